"""The one training loop of the library, and the classification head.

:func:`fit` is the loop every model is trained with (the heads of
:class:`~latentbridge.StitchingClassifier` and of ``latentbridge run``, autoencoders, GNNs):
Adam over mini-batches drawn in an order from a seeded generator (or full-batch), a loss
closure per caller, and an end-of-epoch hook (where a caller keeps its best weights, or checks
the loss). :func:`seeded` is the one way a model is initialised reproducibly: the global RNG is
forked and seeded, so the caller's state is left untouched. :func:`make_head` is the
classification head on top of a space.

Small models spend most of a step in per-operation overhead, not arithmetic. :class:`Stack`
trains ``S`` models of one architecture as one: their parameters stacked along a new first
dimension, the forward mapped over it with ``torch.func.vmap``, each model drawing its own
mini-batches from its own generator, and one fused Adam step for all. Adam is elementwise and
each model's loss depends only on its own parameters, so every model follows its own
trajectory: the result of a model does not depend on which others are stacked with it, up to
rounding (the fused Adam kernel treats the tail of a vector differently, so the last bits can
depend on the stack's size; the experiments fix their stacks by the config for that reason).

Private to the package: :mod:`latentbridge.experiments.training` is where the experiments
(and users) import these from; they live in the core so that the estimator, which must not
import the experiments, trains with the same loop.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

__all__ = ["Generators", "Stack", "fit", "make_head", "seeded"]


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
