"""Normalisations of the absolute space (fitted on the anchors) and of the relative space.

Absolute normalisations map a sample ``z`` to ``n(z) = (z - shift) / scale`` (then, for ``l2``,
to ``n(z) / ||n(z)||``), where ``shift`` and ``scale`` are fitted on the *anchors only*, never on
a batch: a batch's statistics would make a sample's representation depend on its neighbours.

=============  =========================  ==============================  ======================
name           shift / scale              invariant to                    commutes with
=============  =========================  ==============================  ======================
``none``       0 / 1                      --                              every class
``center``     anchor mean / 1            translation                     every linear class
``standard``   anchor mean / anchor std   translation, isotropic and      permutation, sign_flip
                                          diagonal scaling
``l2``         0 / 1, then unit norm      isotropic_scaling               orthogonal (so also
                                                                          permutation, sign_flip)
=============  =========================  ==============================  ======================

Relative normalisations act on the ``K`` coordinates of each relative vector:

- ``none``;
- ``l2``: ``r / ||r||`` (a zero vector stays zero), removes a positive global scale;
- ``standardize``: ``(r - mean(r)) / std(r)`` across the K coordinates (a LayerNorm over the
  anchor axis without affine), removes a positive global scale and a shift.

The effective invariances of a configuration follow from these declarations (see
:func:`latentbridge.projections.effective_invariances`) and are checked numerically by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._scaling import pow2_floor
from ._validation import warn_user
from .transformations import TRANSFORMATIONS, closure

__all__ = [
    "ABSOLUTE",
    "RELATIVE",
    "AbsoluteNormalization",
    "RelativeNormalization",
    "apply_absolute",
    "apply_relative",
    "fit_absolute",
    "get_absolute",
    "get_relative",
    "l2_rows",
    "standardize_rows",
]


@dataclass(frozen=True)
class AbsoluteNormalization:
    """An absolute-space normalisation and the transformation classes it handles.

    ``invariances``: classes ``T`` with ``n(T z) = n(z)`` (statistics refitted on ``T anchors``).
    ``equivariances``: classes with ``n(T z) = T' n(z)`` where ``T'`` is in the same class.
    """

    name: str
    invariances: frozenset[str]
    equivariances: frozenset[str]
    description: str


@dataclass(frozen=True)
class RelativeNormalization:
    """A relative-space normalisation; ``removes_scale`` if ``m(c r) = m(r)`` for ``c > 0``."""

    name: str
    removes_scale: bool
    description: str


_LINEAR = frozenset(TRANSFORMATIONS) - {"translation"}

ABSOLUTE: dict[str, AbsoluteNormalization] = {
    "none": AbsoluteNormalization("none", frozenset(), frozenset(TRANSFORMATIONS), "identity"),
    "center": AbsoluteNormalization(
        "center", frozenset({"translation"}), _LINEAR, "subtract the anchor mean"
    ),
    "standard": AbsoluteNormalization(
        "standard",
        frozenset({"translation", "isotropic_scaling", "diagonal_scaling"}),
        frozenset({"permutation", "sign_flip"}),
        "subtract the anchor mean, divide by the anchor standard deviation per dimension",
    ),
    "l2": AbsoluteNormalization(
        "l2",
        frozenset({"isotropic_scaling"}),
        closure({"orthogonal"}),
        "divide each vector by its euclidean norm",
    ),
}

RELATIVE: dict[str, RelativeNormalization] = {
    "none": RelativeNormalization("none", False, "identity"),
    "l2": RelativeNormalization("l2", True, "divide each relative vector by its euclidean norm"),
    "standardize": RelativeNormalization(
        "standardize", True, "zero mean, unit variance across the K anchor coordinates"
    ),
}


def get_absolute(name: str, argument: str = "normalization") -> AbsoluteNormalization:
    if not isinstance(name, str) or name not in ABSOLUTE:
        raise ValueError(f"{argument} must be one of {list(ABSOLUTE)}, got {name!r}")
    return ABSOLUTE[name]


def get_relative(name: str, argument: str = "relative_normalization") -> RelativeNormalization:
    if not isinstance(name, str) or name not in RELATIVE:
        raise ValueError(f"{argument} must be one of {list(RELATIVE)}, got {name!r}")
    return RELATIVE[name]


def fit_absolute(name: str, anchors: Tensor) -> tuple[Tensor, Tensor]:
    """Fit ``(shift, scale)`` of the absolute normalisation ``name`` on ``anchors (K, D)``.

    Differentiable with respect to the anchors. A feature that is constant across the anchors
    gets scale 1 under ``standard`` (as scikit-learn's StandardScaler does), with a warning.
    """
    get_absolute(name)
    dim = anchors.shape[1]
    ones = torch.ones(dim, dtype=anchors.dtype, device=anchors.device)
    zeros = torch.zeros(dim, dtype=anchors.dtype, device=anchors.device)
    if name in ("none", "l2"):
        return zeros, ones
    # The statistics are computed per column on the anchors divided by a power of two near the
    # column's magnitude (exact), so that neither the sum nor the squared deviations overflow
    # or underflow, however different the columns' magnitudes are.
    unit = pow2_floor(anchors.detach().abs().amax(dim=0))
    unit_anchors = anchors / unit
    unit_shift = unit_anchors.mean(dim=0)
    if name == "center":
        return unit_shift * unit, ones
    unit_scale = unit_anchors.std(dim=0, unbiased=False)
    eps = torch.finfo(anchors.dtype).eps
    constant = unit_scale <= 10 * eps * unit_shift.abs()
    constant |= unit_scale == 0
    scale = unit_scale * unit
    if bool(constant.any()):
        warn_user(
            f"anchors have {int(constant.sum())} constant feature(s) (e.g. dimension "
            f"{int(constant.nonzero()[0])}); their scale is set to 1 under 'standard' "
            "normalization"
        )
        scale = torch.where(constant, ones, scale)
    return unit_shift * unit, scale


def _max_abs_scaled(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(x / max|x|, nonzero)`` row-wise, so that squares neither overflow nor underflow."""
    peak = x.abs().amax(dim=-1, keepdim=True)
    nonzero = peak > 0
    return x / torch.where(nonzero, peak, torch.ones_like(peak)), nonzero


def l2_rows(x: Tensor) -> Tensor:
    """``x / ||x||`` row-wise; zero rows stay zero, with zero (not NaN) gradient.

    Rows are first divided by their largest absolute value, so the result is exact at any
    magnitude the dtype can hold (no overflow of the squared norm).
    """
    scaled, nonzero = _max_abs_scaled(x)
    norm = torch.linalg.vector_norm(scaled, dim=-1, keepdim=True)
    return torch.where(nonzero, scaled / torch.where(nonzero, norm, torch.ones_like(norm)), 0.0)


def standardize_rows(x: Tensor) -> Tensor:
    """Standardise each row across its last axis: ``(x - mean) / std``.

    Rows are first divided by their largest absolute value (no overflow at any magnitude), and
    the variance is regularised by ``eps * mean(x**2)`` (eps of the dtype), which keeps the map
    exactly invariant to a positive rescaling of the row and finite for constant rows (sent to
    about 0). An all-zero row maps to zeros with zero gradient.
    """
    scaled, nonzero = _max_abs_scaled(x)
    centred = scaled - scaled.mean(dim=-1, keepdim=True)
    var = centred.pow(2).mean(dim=-1, keepdim=True)
    eps = torch.finfo(x.dtype).eps
    denom = var + eps * scaled.pow(2).mean(dim=-1, keepdim=True)
    safe = torch.where(nonzero, denom, torch.ones_like(denom))
    return torch.where(nonzero, centred * torch.rsqrt(safe), 0.0)


def apply_absolute(name: str, x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """Apply the fitted absolute normalisation ``name`` to ``x (N, D)``."""
    if name == "none":
        return x
    if name == "l2":
        return l2_rows(x)
    return (x - shift) / scale


def apply_relative(name: str, relative: Tensor) -> Tensor:
    """Apply the relative normalisation ``name`` to ``relative (N, K)``."""
    if name == "none":
        return relative
    if name == "l2":
        return l2_rows(relative)
    if name == "standardize":
        return standardize_rows(relative)
    raise ValueError(f"relative_normalization must be one of {list(RELATIVE)}, got {name!r}")
