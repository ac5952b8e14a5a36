"""The training of the experiments: the one loop, the classification head, and their metrics.

:func:`fit` (Adam over seeded mini-batches, a loss closure, an end-of-epoch hook),
:func:`seeded`, :class:`Stack` (``S`` models of one architecture trained as one: stacked
parameters, a vmapped forward, one fused Adam step) and :func:`make_head` are defined in the
core (``latentbridge._training``, whose docstring states what they guarantee), so that
:class:`~latentbridge.StitchingClassifier` trains with the same loop; the experiments and users
import them from here. :func:`train_classifiers` trains the classification heads of a group as
one :class:`Stack`, :func:`train_classifier` one model of any kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .._training import Stack, fit, make_head, seeded

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
