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
====================  ==========================================  ===========================

``permutation`` and ``sign_flip`` are subgroups of ``orthogonal``: an invariance to
``orthogonal`` implies both (:func:`closure`).
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
)

# Subgroup relations: invariance to the key implies invariance to each value.
_IMPLIES: dict[str, frozenset[str]] = {
    "orthogonal": frozenset({"permutation", "sign_flip"}),
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
    """Add every class implied by the given ones (``orthogonal`` implies its subgroups)."""
    names = set(classes)
    for name in list(names):
        names |= _IMPLIES.get(name, frozenset())
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
      smallest.

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
        g = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(g)
        q = q * torch.sign(torch.diagonal(r))
        return AffineMap(kind, q, zero)
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
    # diagonal_scaling
    while True:
        s = _log_uniform(generator, 0.25, 4.0, dim)
        if float(s.max() / s.min()) >= 2.0:
            break
    return AffineMap(kind, torch.diag(s), zero)
