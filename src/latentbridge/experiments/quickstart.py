"""Quickstart: zero-shot stitching between two synthetic spaces related by an unknown map.

Space B is space A under a random rotation and translation (by default). For each variant, a
head is trained on space A's training split and evaluated, with no retraining, on space B's
test split: the relative variants swap in B's latents of the same anchor samples. A variant
whose invariances cover the transformation keeps its accuracy; absolute latents do not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import anchors as _anchors
from ..modules import ProductProjection, RelativeProjection
from ..projections import PAPER_PRODUCT
from ..synthetic import make_spaces
from .training import accuracy, make_head, seeded, train_classifier

__all__ = ["QuickstartRow", "format_table", "run_quickstart"]


@dataclass(frozen=True)
class QuickstartRow:
    """One variant: its declared invariances and accuracies without and with stitching."""

    variant: str
    invariances: frozenset[str]
    covers_transform: bool
    accuracy: float
    stitched_accuracy: float


def run_quickstart(
    *,
    num_samples: int = 4000,
    dim: int = 32,
    num_classes: int = 10,
    num_anchors: int = 256,
    transformations: Sequence[str] = ("orthogonal", "translation"),
    projections: Sequence[str] = PAPER_PRODUCT,
    aggregation: str = "mlp_sum",
    separation: float = 0.7,
    epochs: int = 10,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[QuickstartRow]:
    """Train every variant on space A and stitch it to space B; one row per variant."""
    spaces = make_spaces(
        num_samples, dim, num_classes, transformations, separation=separation, seed=seed
    )
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_samples, generator=g)
    n_train = int(0.75 * num_samples)
    train, test = order[:n_train], order[n_train:]
    idx = torch.from_numpy(_anchors.select(spaces.x_a[train], num_anchors, seed=seed))
    anchors_a, anchors_b = spaces.x_a[train][idx], spaces.x_b[train][idx]
    target = set(transformations)

    variants: list[str] = ["absolute", *projections, f"product ({aggregation})"]
    rows = []
    for i, name in enumerate(variants):
        if progress is not None:
            progress(f"[{i + 1}/{len(variants)}] training on space A: {name}")
        with seeded(seed + i):
            relative: RelativeProjection | ProductProjection | None = None
            if name == "absolute":
                head = make_head(dim, num_classes)
                model: nn.Module = head
            else:
                if name in projections:
                    relative = RelativeProjection(name)
                else:
                    relative = ProductProjection(projections, aggregation, num_anchors)
                relative.fit(anchors_a)
                head = make_head(relative.out_features, num_classes)
                model = nn.Sequential(relative, head)
            train_classifier(
                model, spaces.x_a[train], spaces.labels[train], epochs=epochs, generator=g
            )
        if relative is None:
            stitched, invariances = model, frozenset[str]()
        else:
            stitched = nn.Sequential(relative.with_anchors(anchors_b), head)
            invariances = relative.invariances
        rows.append(
            QuickstartRow(
                variant=name,
                invariances=invariances,
                covers_transform=target <= invariances,
                accuracy=accuracy(model, spaces.x_a[test], spaces.labels[test]),
                stitched_accuracy=accuracy(stitched, spaces.x_b[test], spaces.labels[test]),
            )
        )
    return rows


def format_table(rows: Sequence[QuickstartRow], transformations: Sequence[str]) -> str:
    """A markdown table of the rows."""
    target = " + ".join(transformations) or "identity"
    lines = [
        f"| variant | invariant to {target}? | accuracy on A (not stitched) "
        "| accuracy on B (stitched) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.variant} | {'yes' if r.covers_transform else 'no'} | {r.accuracy:.3f} | "
            f"{r.stitched_accuracy:.3f} |"
        )
    return "\n".join(lines)
