"""The one training loop of the experiments, the classification head, and their metrics.

:func:`fit` is the loop every model of ``latentbridge run`` is trained with (classification
heads, autoencoders, GNNs): Adam over mini-batches drawn in an order from a seeded generator
(or full-batch), a loss closure per task, and an end-of-epoch hook where a task keeps its best
weights. :func:`seeded` is the one way a model is initialised reproducibly: the global RNG is
forked and seeded, so the caller's state is left untouched.

Small models spend most of a step in per-operation overhead, not arithmetic. :class:`Stack`
trains ``S`` models of one architecture as one: their parameters stacked along a new first
dimension, the forward mapped over it with ``torch.func.vmap``, each model drawing its own
mini-batches from its own generator, and one fused Adam step for all. Adam is elementwise and
each model's loss depends only on its own parameters, so every model follows its own
trajectory: the result of a model does not depend on which others are stacked with it, up to
rounding (the fused Adam kernel treats the tail of a vector differently, so the last bits can
depend on the stack's size; the experiments fix their stacks by the config for that reason).
:func:`train_classifiers` trains classification heads this way.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

__all__ = [
    "Stack",
    "accuracy",
    "fit",
    "logits",
    "macro_f1",
    "make_head",
    "predict",
    "seeded",
    "train_classifier",
    "train_classifiers",
]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with the global torch RNG seeded by ``seed``; restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


Generators = torch.Generator | Sequence[torch.Generator] | None


def _batches(
    num_samples: int, batch_size: int | None, generator: Generators
) -> Iterator[Tensor | None]:
    """One epoch's mini-batches of sample indices (a new order from ``generator``), or a single
    ``None`` (the full batch) when ``batch_size`` is None. With a sequence of ``S`` generators
    (a :class:`Stack`), each batch is ``(S, B)``: row ``s`` drawn from generator ``s``."""
    if batch_size is None:
        yield None
        return
    if isinstance(generator, Sequence):
        order = torch.stack([torch.randperm(num_samples, generator=g) for g in generator])
        for start in range(0, num_samples, batch_size):
            yield order[:, start : start + batch_size]
        return
    order = torch.randperm(num_samples, generator=generator)
    for start in range(0, num_samples, batch_size):
        yield order[start : start + batch_size]


class Stack(nn.Module):
    """``S`` models of one architecture as one module, for training them together.

    The parameters (and buffers) of the models are stacked along a new first dimension
    (``torch.func.stack_module_state``) and ``forward(*inputs)`` maps the models' common forward
    over it (``torch.func.vmap``): each input carries the models' dimension first, ``(S, ...)``,
    and so does the output. :meth:`unstack` copies the trained values back into the models.
    Modules whose forward draws random numbers or updates buffers (dropout, batch norm) are
    refused by ``vmap``; the heads and aggregations of the experiments do neither.
    """

    _base: nn.Module
    _models: list[nn.Module]

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("models must hold at least one module")
        params, buffers = stack_module_state(list(models))
        self._names = list(params)
        self._buffer_names = list(buffers)
        trainable = dict(models[0].named_parameters())
        self.weights = nn.ParameterList(
            nn.Parameter(params[n].detach(), requires_grad=trainable[n].requires_grad)
            for n in self._names
        )
        for i, name in enumerate(self._buffer_names):
            self.register_buffer(f"buffer_{i}", buffers[name].detach())
        # Neither is a submodule: the stack's parameters are only the stacked ones.
        self.__dict__["_base"] = copy.deepcopy(models[0]).to("meta")
        self.__dict__["_models"] = list(models)

    def __len__(self) -> int:
        return len(self._models)

    def train(self, mode: bool = True) -> Stack:
        super().train(mode)
        self._base.train(mode)
        return self

    def forward(self, *inputs: Tensor) -> Tensor:
        def call(weights: tuple[Tensor, ...], buffers: tuple[Tensor, ...], *xs: Tensor) -> Tensor:
            state = (
                dict(zip(self._names, weights, strict=True)),
                dict(zip(self._buffer_names, buffers, strict=True)),
            )
            out: Tensor = functional_call(self._base, state, xs)
            return out

        buffers = tuple(getattr(self, f"buffer_{i}") for i in range(len(self._buffer_names)))
        result: Tensor = vmap(call)(tuple(self.weights), buffers, *inputs)
        return result

    @torch.no_grad()
    def unstack(self) -> list[nn.Module]:
        """The models, their parameters and buffers set to the stack's (in eval mode)."""
        for s, model in enumerate(self._models):
            for name, stacked in zip(self._names, self.weights, strict=True):
                model.get_parameter(name).copy_(stacked[s])
            for i, name in enumerate(self._buffer_names):
                model.get_buffer(name).copy_(getattr(self, f"buffer_{i}")[s])
            model.eval()
        return self._models


def fit(
    model: nn.Module,
    loss: Callable[[Tensor | None], Tensor],
    *,
    num_samples: int,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    generator: Generators = None,
    end_of_epoch: Callable[[int], None] | None = None,
) -> nn.Module:
    """Minimise ``loss(batch)`` over ``model``'s parameters with Adam; returns it in eval mode.

    Each epoch visits ``num_samples`` in mini-batches of ``batch_size`` indices, in an order
    drawn from ``generator`` (``batch_size=None``: one full batch, ``loss(None)``); each step
    zeroes the gradients, backpropagates ``loss(batch)`` and steps Adam(``lr``,
    ``weight_decay``). The model is in train mode during the steps; ``end_of_epoch(epoch)``
    runs after each epoch (it may evaluate, e.g. to keep the best weights).

    A :class:`Stack` takes one generator per model (its batches are ``(S, B)``, see
    :func:`_batches`), a ``loss`` that sums the models' losses, and Adam's fused kernel (one
    step for all the stacked parameters).
    """
    fused = isinstance(model, Stack)
    if fused and (batch_size is None or not isinstance(generator, Sequence)):
        raise ValueError(
            "a Stack trains on mini-batches: pass batch_size and one generator per model"
        )
    optimizer = torch.optim.Adam(
        model.parameters(), lr=lr, weight_decay=weight_decay, fused=True if fused else None
    )
    for epoch in range(epochs):
        model.train()
        for batch in _batches(num_samples, batch_size, generator):
            optimizer.zero_grad()
            loss(batch).backward()
            optimizer.step()
        if end_of_epoch is not None:
            end_of_epoch(epoch)
    model.eval()
    return model


def make_head(in_features: int, num_classes: int, hidden: int = 128) -> nn.Module:
    """LayerNorm -> Linear -> Tanh -> Linear: the classification head on top of a space."""
    return nn.Sequential(
        nn.LayerNorm(in_features),
        nn.Linear(in_features, hidden),
        nn.Tanh(),
        nn.Linear(hidden, num_classes),
    )


def train_classifiers(
    models: Sequence[nn.Module],
    xs: Sequence[Tensor],
    y: Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    generators: Sequence[torch.Generator],
    device: torch.device | str = "cpu",
) -> list[nn.Module]:
    """Train ``models[s]`` on ``(xs[s], y)`` for every ``s`` at once, as one :class:`Stack`.

    Each model minimises the mean cross-entropy of its own shuffled mini-batches (order from
    ``generators[s]``) with its own Adam state: the same protocol as training it alone, and a
    result that does not depend on the other models. The models must share one architecture
    (and so one input width); ``xs`` are ``(N, F)`` each, with the labels ``y`` ``(N,)``.
    The stack trains on ``device`` (inputs moved there once, mini-batch orders still drawn
    on the CPU); the models come back with the trained values on their own device.
    """
    if not (len(models) == len(xs) == len(generators)):
        raise ValueError(
            f"models, xs and generators must have one entry per model, got {len(models)}, "
            f"{len(xs)} and {len(generators)}"
        )
    stack = Stack(models).to(device)
    shared = all(x is xs[0] for x in xs)
    on_device = [x.to(device) for x in (xs[:1] if shared else xs)]
    y = y.to(device)

    def loss(batch: Tensor | None) -> Tensor:
        assert batch is not None  # mini-batches, one row per model
        batch = batch.to(device)
        if shared:
            inputs = on_device[0][batch]
        else:
            inputs = torch.stack([x[rows] for x, rows in zip(on_device, batch, strict=True)])
        out = stack(inputs)  # (S, B, C)
        per_sample = nn.functional.cross_entropy(
            out.reshape(-1, out.shape[-1]), y[batch].reshape(-1), reduction="none"
        )
        return per_sample.view(batch.shape).mean(dim=1).sum()

    fit(
        stack,
        loss,
        num_samples=y.shape[0],
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        generator=list(generators),
    )
    return stack.unstack()


def train_classifier(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    generator: torch.Generator,
) -> nn.Module:
    """Minimise cross-entropy with Adam over shuffled mini-batches (order from ``generator``).

    One model of any kind (e.g. a relative layer with its head, whose forward validates its
    input, which ``vmap`` does not allow); :func:`train_classifiers` trains several heads of
    one architecture at once by the same protocol.
    """
    loss_fn = nn.CrossEntropyLoss()

    def loss(batch: Tensor | None) -> Tensor:
        assert batch is not None  # mini-batches
        return loss_fn(model(x[batch]), y[batch])

    return fit(
        model,
        loss,
        num_samples=x.shape[0],
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        generator=generator,
    )


@torch.no_grad()
def logits(model: nn.Module, x: Tensor, batch_size: int = 4096) -> Tensor:
    """The model's outputs on ``x``, in batches."""
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def predict(model: nn.Module, x: Tensor, batch_size: int = 4096) -> Tensor:
    """Predicted class indices, in batches."""
    return logits(model, x, batch_size).argmax(dim=1)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def macro_f1(predicted: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN); a class absent from both
    prediction and target is skipped (as scikit-learn does with zero_division handling aside)."""
    scores = []
    for c in range(num_classes):
        tp = int(np.sum((predicted == c) & (target == c)))
        fp = int(np.sum((predicted == c) & (target != c)))
        fn = int(np.sum((predicted != c) & (target == c)))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0
