"""Heads and their training loop, shared by the experiments."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["accuracy", "macro_f1", "make_head", "predict", "train_classifier"]


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
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 4096) -> Tensor:
    """Predicted class indices, in batches."""
    return torch.cat(
        [model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)]
    )


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
