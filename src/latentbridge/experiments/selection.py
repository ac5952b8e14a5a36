"""Zero-shot selection among the trained variants of a cell: ``selected`` and ``ensemble``.

Every task that stitches a model has, per (source, target) pair and candidate variant (the
single projections and the products a config trains), three outputs of the candidate's model
trained on the source: on the target's evaluation inputs, on the source's own view of the
anchors and on the target's view of them. The two anchor sides give the candidate's anchor
consistency (:mod:`latentbridge.stitching`), which needs no label and no training on the target:

- ``selected``: the outputs of the candidate with the highest consistency (the first, in config
  order, on ties; on the non-stitched pair every consistency is 1, so the first candidate);
- ``ensemble``: every output averaged over the candidates with the weights
  ``softmax(consistency / T)`` of :func:`latentbridge.stitching.consistency_weights`
  (:data:`~latentbridge.stitching.ENSEMBLE_TEMPERATURE`); a classifier averages its predicted
  probabilities, a decoder its outputs. On the non-stitched pair the weights are equal.

The selected or combined outputs then give the cell's rows as a candidate's outputs would, and
its own anchor consistency from the combined anchor sides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..stitching import consistency_weights, select_by_consistency
from .variants import SELECTIONS

__all__ = ["Sides", "combine", "combine_targets", "weighted_mean"]

#: A candidate's outputs for one pair: (evaluation outputs, source's anchors, target's anchors).
Sides = tuple[Tensor, Tensor, Tensor]


def weighted_mean(outputs: Sequence[Tensor], weights: Tensor) -> Tensor:
    """``sum_c w_c outputs_c`` in float64 (a decoder's ensemble)."""
    stacked = torch.stack([o.to(torch.float64) for o in outputs])
    return torch.tensordot(weights.to(torch.float64), stacked, dims=1)


def combine(
    kind: str,
    candidates: Sequence[Sides],
    agreement: Callable[[Tensor, Tensor], float],
    average: Callable[[Sequence[Tensor], Tensor], Tensor],
) -> Sides:
    """The ``selected`` or ``ensemble`` outputs of one pair from the candidates' ``Sides``;
    ``agreement(own, stitched)`` is the task's anchor consistency, ``average(outputs, weights)``
    its way of averaging outputs."""
    if kind not in SELECTIONS:
        raise ValueError(f"selection kind must be one of {list(SELECTIONS)}, got {kind!r}")
    if not candidates:
        raise ValueError("a selection needs at least one candidate")
    scores = [agreement(own, stitched) for _, own, stitched in candidates]
    if kind == "selected":
        return candidates[select_by_consistency(scores)]
    weights = consistency_weights(scores)
    test, own, stitched = (average([c[i] for c in candidates], weights) for i in range(3))
    return test, own, stitched


def combine_targets(
    kind: str,
    pool: Sequence[dict[str, Sides]],
    agreement: Callable[[Tensor, Tensor], float],
    average: Callable[[Sequence[Tensor], Tensor], Tensor],
) -> dict[str, Sides]:
    """:func:`combine` for every target of a cell: ``pool`` holds each candidate's ``Sides``
    per target (the same targets, in the same order)."""
    if not pool:
        raise ValueError("a selection needs at least one candidate")
    return {t: combine(kind, [p[t] for p in pool], agreement, average) for t in pool[0]}
