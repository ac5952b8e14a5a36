"""The one training loop of the experiments, the classification head, and their metrics.

:func:`fit` is the loop every model of ``latentbridge run`` is trained with (classification
heads, autoencoders, GNNs): Adam over mini-batches drawn in an order from a seeded generator
(or full-batch), a loss closure per task, and an end-of-epoch hook where a task keeps its best
weights. :func:`seeded` is the one way a model is initialised reproducibly: the global RNG is
forked and seeded, so the caller's state is left untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "accuracy",
    "fit",
    "logits",
    "macro_f1",
    "make_head",
    "predict",
    "seeded",
    "train_classifier",
]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with the global torch RNG seeded by ``seed``; restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def _batches(
    num_samples: int, batch_size: int | None, generator: torch.Generator | None
) -> Iterator[Tensor | None]:
    """One epoch's mini-batches of sample indices (a new order from ``generator``), or a single
    ``None`` (the full batch) when ``batch_size`` is None."""
    if batch_size is None:
        yield None
        return
    order = torch.randperm(num_samples, generator=generator)
    for start in range(0, num_samples, batch_size):
        yield order[start : start + batch_size]


def fit(
    model: nn.Module,
    loss: Callable[[Tensor | None], Tensor],
    *,
    num_samples: int,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    end_of_epoch: Callable[[int], None] | None = None,
) -> nn.Module:
    """Minimise ``loss(batch)`` over ``model``'s parameters with Adam; returns it in eval mode.

    Each epoch visits ``num_samples`` in mini-batches of ``batch_size`` indices, in an order
    drawn from ``generator`` (``batch_size=None``: one full batch, ``loss(None)``); each step
    zeroes the gradients, backpropagates ``loss(batch)`` and steps Adam(``lr``,
    ``weight_decay``). The model is in train mode during the steps; ``end_of_epoch(epoch)``
    runs after each epoch (it may evaluate, e.g. to keep the best weights).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
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
    """Minimise cross-entropy with Adam over shuffled mini-batches (order from ``generator``)."""
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
