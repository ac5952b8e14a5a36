"""Numerical checks of declared invariances.

:func:`verify_invariances` applies random members of each transformation class to samples and
anchors alike and measures how much a projection's output moves. The test-suite runs it over
every registered projection and normalisation, so a declaration that does not hold fails; users
can run it on their own registered projections and on configured modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from .modules import ProductProjection, RelativeProjection
from .projections import effective_invariances, relative_projection
from .transformations import TRANSFORMATIONS, AffineMap, random_transformation

__all__ = ["InvarianceCheck", "invariance_error", "sample_space", "verify_invariances"]

ProjectionLike = Callable[[Tensor, Tensor], Tensor]

# A declared invariance must hold to this relative error in float64, and an undeclared one must
# be violated by more than VIOLATION: the two are six orders of magnitude apart.
TOLERANCE = 1e-9
VIOLATION = 1e-3


def sample_space(
    n: int, dim: int, *, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Random points with an anisotropic spread, rotated and far from the origin, ``(n, dim)``.

    Generic on purpose: no symmetry that would hide a missing invariance.
    """
    scales = torch.exp(
        torch.empty(dim, dtype=torch.float64).uniform_(-1.2, 1.2, generator=generator)
    )
    rotation = random_transformation("orthogonal", dim, generator=generator).weight
    offset = 2.0 * torch.randn(dim, generator=generator, dtype=torch.float64)
    z = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return ((z * scales) @ rotation + offset).to(dtype)


def invariance_error(
    function: ProjectionLike, x: Tensor, anchors: Tensor, transform: AffineMap
) -> float:
    """``||f(T x, T a) - f(x, a)|| / ||f(x, a)||`` (Frobenius norms)."""
    with torch.no_grad():
        before = function(x, anchors)
        after = function(transform(x), transform(anchors))
    scale = torch.linalg.vector_norm(before).clamp_min(torch.finfo(before.dtype).tiny)
    return float(torch.linalg.vector_norm(after - before) / scale)


@dataclass(frozen=True)
class InvarianceCheck:
    """Outcome for one transformation class: declared, measured worst relative error, verdict.

    ``consistent`` is True when a declared invariance holds (error <= tolerance) or an
    undeclared one is clearly violated (error > violation threshold).
    """

    transformation: str
    declared: bool
    error: float
    consistent: bool


def _as_function(
    target: str | RelativeProjection | ProductProjection | ProjectionLike,
    normalization: str,
    relative_normalization: str,
) -> tuple[ProjectionLike, frozenset[str] | None]:
    if isinstance(target, str):

        def function(x: Tensor, anchors: Tensor) -> Tensor:
            return relative_projection(x, anchors, target, normalization, relative_normalization)

        return function, effective_invariances(target, normalization, relative_normalization)
    if isinstance(target, (RelativeProjection, ProductProjection)):
        module = target

        def forward(x: Tensor, anchors: Tensor) -> Tensor:
            return module(x, anchors=anchors)

        return forward, module.invariances
    if callable(target):
        return target, None
    raise TypeError(
        "target must be a projection name, a RelativeProjection/ProductProjection or a "
        f"callable f(x, anchors), got {type(target).__name__}"
    )


def verify_invariances(
    target: str | RelativeProjection | ProductProjection | ProjectionLike,
    normalization: str = "none",
    relative_normalization: str = "none",
    *,
    declared: Iterable[str] | None = None,
    transformations: Iterable[str] = TRANSFORMATIONS,
    num_samples: int = 64,
    num_anchors: int = 16,
    dim: int = 8,
    trials: int = 3,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    violation: float = VIOLATION,
) -> dict[str, InvarianceCheck]:
    """Measure, per transformation class, the worst relative change of the output over trials.

    Args:
        target: a projection name (with the two normalisations), a configured module (its
            ``invariances`` are the declaration; it is evaluated in its parameters' dtype, so
            call ``.double()`` for float64 precision), or any ``f(x, anchors)``.
        declared: the claimed invariances; taken from the target when it has them.
        trials: independent draws of data and transformation; the worst error is reported.

    Returns:
        ``{transformation: InvarianceCheck}``.
    """
    function, claimed = _as_function(target, normalization, relative_normalization)
    if declared is not None:
        claimed = frozenset(declared)
    if claimed is None:
        raise ValueError("declared is required when target is a plain callable")
    generator = torch.Generator().manual_seed(seed)
    results: dict[str, InvarianceCheck] = {}
    for kind in transformations:
        worst = 0.0
        for _ in range(trials):
            points = sample_space(num_samples + num_anchors, dim, generator=generator)
            x, anchors = points[:num_samples], points[num_samples:]
            transform = random_transformation(kind, dim, generator=generator)
            worst = max(worst, invariance_error(function, x, anchors, transform))
        is_declared = kind in claimed
        consistent = worst <= tolerance if is_declared else worst > violation
        results[kind] = InvarianceCheck(kind, is_declared, worst, consistent)
    return results
