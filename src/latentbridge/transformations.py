"""The vocabulary of transformation classes, and random members of each class.

Invariances in latentbridge are statements about *classes* of maps ``T`` applied to the
samples and the anchors alike: a relative projection ``r`` is invariant to a class when
``r(T x; T anchors) == r(x; anchors)`` for every member ``T``. Every class in the vocabulary is
a group of affine maps ``z -> z @ weight + bias`` of the absolute space:

====================  ==========================================  ===========================
name                  members                                      weight / bias
====================  ==========================================  ===========================
``orthogonal``        rotations and reflections                    ``Q`` with ``Q^T Q = I``
``isotropic_scaling`` one positive factor for every coordinate     ``c I``, ``c > 0``
``translation``       shifts                                       ``I``, ``t``
``permutation``       reorderings of the coordinates (units)       permutation matrix ``P``
``sign_flip``         per-coordinate sign changes                  ``diag(s)``, ``s in {-1, 1}``
``diagonal_scaling``  a positive factor per coordinate             ``diag(s)``, ``s > 0``
``affine``            every invertible linear map plus a shift     ``A`` with ``det A != 0``,
                                                                   ``t``
====================  ==========================================  ===========================

The classes are ordered by inclusion (:func:`closure`): ``permutation`` and ``sign_flip`` are
subgroups of ``orthogonal``, ``isotropic_scaling`` is one of ``diagonal_scaling``, and ``affine``
contains every other class. An invariance to a class implies the invariance to its subgroups.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "TRANSFORMATIONS",
    "AffineMap",
    "closure",
    "compose",
    "random_transformation",
    "validate_classes",
]

TRANSFORMATIONS: tuple[str, ...] = (
    "orthogonal",
    "isotropic_scaling",
    "translation",
    "permutation",
    "sign_flip",
    "diagonal_scaling",
    "affine",
)

# Subgroup relations: invariance to the key implies invariance to each value.
_IMPLIES: dict[str, frozenset[str]] = {
    "orthogonal": frozenset({"permutation", "sign_flip"}),
    "diagonal_scaling": frozenset({"isotropic_scaling"}),
    "affine": frozenset(TRANSFORMATIONS) - {"affine"},
}


def validate_classes(classes: Iterable[str], argument: str) -> frozenset[str]:
    """Return ``classes`` as a frozenset after checking every name is in the vocabulary."""
    if isinstance(classes, str):
        raise TypeError(
            f"{argument} must be a collection of transformation names, got the string "
            f"{classes!r}; wrap it: {{{classes!r}}}"
        )
    names = frozenset(classes)
    unknown = sorted(names - set(TRANSFORMATIONS))
    if unknown:
        raise ValueError(
            f"{argument} contains unknown transformation class(es) {unknown}; "
            f"the vocabulary is {list(TRANSFORMATIONS)}"
        )
    return names


def closure(classes: Iterable[str]) -> frozenset[str]:
    """Add every subgroup of the given classes: ``orthogonal`` implies ``permutation`` and
    ``sign_flip``, ``diagonal_scaling`` implies ``isotropic_scaling``, ``affine`` implies every
    other class."""
    names = set(classes)
    pending = list(names)
    while pending:
        for implied in _IMPLIES.get(pending.pop(), frozenset()) - names:
            names.add(implied)
            pending.append(implied)
    return frozenset(names)


@dataclass(frozen=True)
class AffineMap:
    """The map ``z -> z @ weight + bias`` applied row-wise to a batch ``(N, D)``."""

    kind: str
    weight: Tensor
    bias: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        weight = self.weight.to(device=x.device, dtype=x.dtype)
        bias = self.bias.to(device=x.device, dtype=x.dtype)
        return x @ weight + bias

    @property
    def dim(self) -> int:
        return int(self.weight.shape[0])


def compose(*maps: AffineMap) -> AffineMap:
    """The map applying ``maps[0]`` first, then ``maps[1]``, ...; its kind joins theirs with '+'."""
    if not maps:
        raise ValueError("compose needs at least one map")
    weight, bias = maps[0].weight, maps[0].bias
    for m in maps[1:]:
        if m.dim != maps[0].dim:
            raise ValueError(f"cannot compose maps of dimensions {maps[0].dim} and {m.dim}")
        weight, bias = weight @ m.weight, bias @ m.weight + m.bias
    return AffineMap("+".join(m.kind for m in maps), weight, bias)


def _log_uniform(generator: torch.Generator, low: float, high: float, size: int) -> Tensor:
    u = torch.rand(size, generator=generator, dtype=torch.float64)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def _haar(dim: int, generator: torch.Generator) -> Tensor:
    """A Haar-distributed orthogonal matrix: QR of a Gaussian matrix, with the sign correction."""
    g = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    return q * torch.sign(torch.diagonal(r))


def _spread_factors(generator: torch.Generator, low: float, high: float, size: int) -> Tensor:
    """Log-uniform factors in ``[low, high]``, redrawn until the largest is at least twice the
    smallest."""
    while True:
        s = _log_uniform(generator, low, high, size)
        if float(s.max() / s.min()) >= 2.0:
            return s


def random_transformation(
    kind: str,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    translation_scale: float = 3.0,
) -> AffineMap:
    """Draw a random member of the transformation class ``kind`` acting on ``dim`` dimensions.

    The draws avoid the identity and other degenerate members so that a projection *not*
    invariant to the class visibly changes (what negative controls need):

    - ``orthogonal``: Haar-distributed (QR of a Gaussian matrix with the sign correction);
    - ``isotropic_scaling``: ``c`` log-uniform in [2, 5] or its inverse, with equal odds;
    - ``translation``: Gaussian with standard deviation ``translation_scale`` per coordinate;
    - ``permutation``: uniform over the permutations other than the identity;
    - ``sign_flip``: independent signs, at least one of them negative;
    - ``diagonal_scaling``: factors log-uniform in [1/4, 4], the largest at least twice the
      smallest;
    - ``affine``: ``Q1 diag(s) Q2`` with ``Q1``, ``Q2`` Haar-distributed and ``s`` log-uniform
      in [1/2, 2], the largest at least twice the smallest (a condition number in [2, 4], so
      neither orthogonal nor close to singular), plus a translation as for ``translation``.

    Returns an :class:`AffineMap` in float64 on the CPU; it casts itself to its input.
    """
    if kind not in TRANSFORMATIONS:
        raise ValueError(f"kind must be one of {list(TRANSFORMATIONS)}, got {kind!r}")
    if not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2, got {dim!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    eye = torch.eye(dim, dtype=torch.float64)
    zero = torch.zeros(dim, dtype=torch.float64)
    if kind == "orthogonal":
        return AffineMap(kind, _haar(dim, generator), zero)
    if kind == "isotropic_scaling":
        c = float(_log_uniform(generator, 2.0, 5.0, 1))
        if torch.rand(1, generator=generator).item() < 0.5:
            c = 1.0 / c
        return AffineMap(kind, c * eye, zero)
    if kind == "translation":
        t = translation_scale * torch.randn(dim, generator=generator, dtype=torch.float64)
        return AffineMap(kind, eye, t)
    if kind == "permutation":
        while True:
            perm = torch.randperm(dim, generator=generator)
            if not torch.equal(perm, torch.arange(dim)):
                break
        return AffineMap(kind, eye[perm], zero)
    if kind == "sign_flip":
        signs = torch.where(torch.rand(dim, generator=generator) < 0.5, -1.0, 1.0)
        if bool((signs > 0).all()):
            signs[torch.randint(dim, (1,), generator=generator)] = -1.0
        return AffineMap(kind, torch.diag(signs.to(torch.float64)), zero)
    if kind == "diagonal_scaling":
        return AffineMap(kind, torch.diag(_spread_factors(generator, 0.25, 4.0, dim)), zero)
    # affine
    left, right = _haar(dim, generator), _haar(dim, generator)
    singular = _spread_factors(generator, 0.5, 2.0, dim)
    t = translation_scale * torch.randn(dim, generator=generator, dtype=torch.float64)
    return AffineMap(kind, (left * singular) @ right, t)
