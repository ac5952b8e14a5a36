"""Normalisations of the absolute space (fitted on the anchors) and of the relative space.

Absolute normalisations map a sample ``z`` to ``n(z) = ((z - shift) / scale) W`` (then, for
``l2``, to ``n(z) / ||n(z)||``), where ``shift``, ``scale`` (:func:`fit_absolute`) and the
``(D, D)`` whitening matrix ``W`` (:func:`fit_whitening`, the identity except for ``whiten``)
are fitted on the *anchors only*, never on a batch: a batch's statistics would make a sample's
representation depend on its neighbours.

=============  ==============================  =======================  =========================
name           shift / scale / W               invariant to             maps T to T' in
=============  ==============================  =======================  =========================
``none``       0 / 1 / I                       --                       every class (T' = T)
``center``     anchor mean / 1 / I             translation              every class but
                                                                        translation (T' = linear
                                                                        part of T)
``standard``   anchor mean / anchor std / I    translation, isotropic   permutation, sign_flip
                                               and diagonal scaling
``l2``         0 / 1 / I, then unit norm       isotropic_scaling        orthogonal (so also
                                                                        permutation, sign_flip)
``whiten``     anchor mean / anchor std /      translation, isotropic   permutation, sign_flip;
               ``C_a^(-1/2)`` (below)          and diagonal scaling     orthogonal and affine to
                                                                        orthogonal *if exact*
=============  ==============================  =======================  =========================

"Maps T to T'" means ``n(T z) = T' n(z)`` with the statistics refitted on ``T anchors``
(:attr:`AbsoluteNormalization.equivariances`); a projection invariant to the class of ``T'`` is
then invariant to ``T`` (:func:`latentbridge.projections.effective_invariances`).

``whiten`` is ``standard`` followed by a ZCA whitening of the standardised anchors (ZCA-cor,
Kessy, Lewin and Strimmer 2018) with an eigenvalue floor, so that it is defined for any K. With
``U`` the anchors standardised as by ``standard`` (``K x D``), ``C = U^T U / K = V diag(lambda)
V^T`` their correlation matrix (eigenvalues ``lambda``, mean 1) and the one constant
``tau =`` :data:`WHITENING_FLOOR` ``= 1e-4``:

    W = V diag(f(lambda)) V^T,    f(l) = l^(-1/2) if l >= tau, else (l / tau)^2 / sqrt(tau),
    n(z) = ((z - mean) / std) W.

Eigenvalues at or above the floor are inverted as ZCA does; those below it are damped instead
(``f`` is continuous, increases up to ``1 / sqrt(tau) = 100`` at ``tau`` and is flat at 0), so a
direction in which the anchors barely vary, or do not vary at all, is shrunk toward 0 rather
than amplified: a sample's component outside the anchors' span is removed (rounding-level
eigenvalues give exactly negligible weights), and no direction is amplified more than 100 times
a feature's own standard deviation.

When every eigenvalue is at or above the floor (a well-conditioned correlation matrix, which
needs K > D, see :func:`whitening_is_exact`), the whitening is *exact*: the anchors are mapped
to zero mean and identity covariance, and for every invertible ``A``,
``n(z A + t) = n(z) R`` with ``R`` orthogonal (two whitenings of one covariance differ by a
rotation), so cosine, euclidean, dot, angular and rbf become invariant to ``affine``. When
K <= D (the anchors span at most K - 1 directions) or the correlation matrix is ill
conditioned, the floor is active and the whitening no longer commutes with rotations or
general linear maps: those invariances are then lost (no representation of a sample outside
the span of K <= D anchors can be affine-invariant), while translations, scalings, permutations
and sign flips are handled exactly for any K (they leave the correlation matrix unchanged or
permute its rows and columns). A feature constant across the anchors is left out: its
standardised column is 0, and so is its whitened coordinate.

Relative normalisations act on the ``K`` coordinates of each relative vector:

- ``none``;
- ``l2``: ``r / ||r||`` (a zero vector stays zero), removes a positive global scale;
- ``standardize``: ``(r - mean(r)) / std(r)`` across the K coordinates (a LayerNorm over the
  anchor axis without affine), removes a positive global scale and a shift.

The effective invariances of a configuration follow from these declarations (see
:func:`latentbridge.projections.effective_invariances`) and are checked numerically by the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from ._scaling import pow2_floor
from ._validation import linalg_errors, warn_user
from .transformations import TRANSFORMATIONS, closure

__all__ = [
    "ABSOLUTE",
    "RELATIVE",
    "WHITENING_FLOOR",
    "AbsoluteNormalization",
    "RelativeNormalization",
    "apply_absolute",
    "apply_relative",
    "fit_absolute",
    "fit_whitening",
    "get_absolute",
    "get_relative",
    "l2_rows",
    "standardize_rows",
    "whitening_is_exact",
]

#: ``tau``: the smallest eigenvalue of the anchors' correlation matrix that ``whiten`` inverts
#: (see the module docstring); smaller ones are damped instead.
WHITENING_FLOOR = 1e-4


@dataclass(frozen=True)
class AbsoluteNormalization:
    """An absolute-space normalisation and the transformation classes it handles.

    ``invariances``: classes ``T`` with ``n(T z) = n(z)`` (statistics refitted on ``T anchors``).
    ``equivariances``: ``{T: T'}`` for the classes with ``n(T z) = T'(n(z))``, where ``T'`` is a
    member of the class ``T'`` (the class ``T`` itself, except under ``whiten``, which turns
    orthogonal and affine maps into orthogonal ones).
    ``exact_only``: the classes of ``equivariances`` for which this holds only when the fitted
    whitening is exact (:func:`whitening_is_exact` of the anchors of both spaces); empty but for
    ``whiten``.
    ``whitens``: whether the normalisation has a whitening matrix (:func:`fit_whitening`).
    """

    name: str
    invariances: frozenset[str]
    equivariances: Mapping[str, str] = field(hash=False)
    description: str
    exact_only: frozenset[str] = frozenset()
    whitens: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "invariances", closure(self.invariances))
        object.__setattr__(self, "equivariances", MappingProxyType(dict(self.equivariances)))


@dataclass(frozen=True)
class RelativeNormalization:
    """A relative-space normalisation; ``removes_scale`` if ``m(c r) = m(r)`` for ``c > 0``."""

    name: str
    removes_scale: bool
    description: str


def _same_class(classes: frozenset[str]) -> dict[str, str]:
    return {kind: kind for kind in classes}


_EVERY = frozenset(TRANSFORMATIONS)
_SIGNED_PERMUTATIONS = frozenset({"permutation", "sign_flip"})

ABSOLUTE: dict[str, AbsoluteNormalization] = {
    "none": AbsoluteNormalization("none", frozenset(), _same_class(_EVERY), "identity"),
    "center": AbsoluteNormalization(
        "center",
        frozenset({"translation"}),
        _same_class(_EVERY - {"translation"}),
        "subtract the anchor mean",
    ),
    "standard": AbsoluteNormalization(
        "standard",
        frozenset({"translation", "isotropic_scaling", "diagonal_scaling"}),
        _same_class(_SIGNED_PERMUTATIONS),
        "subtract the anchor mean, divide by the anchor standard deviation per dimension",
    ),
    "l2": AbsoluteNormalization(
        "l2",
        frozenset({"isotropic_scaling"}),
        _same_class(closure({"orthogonal"})),
        "divide each vector by its euclidean norm",
    ),
    "whiten": AbsoluteNormalization(
        "whiten",
        frozenset({"translation", "isotropic_scaling", "diagonal_scaling"}),
        {**_same_class(_SIGNED_PERMUTATIONS), "orthogonal": "orthogonal", "affine": "orthogonal"},
        "standardise with the anchor mean and std, then ZCA-whiten with the anchors' correlation "
        f"matrix, damping its eigenvalues below {WHITENING_FLOOR:g}",
        exact_only=frozenset({"orthogonal", "affine"}),
        whitens=True,
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


def _standard_statistics(anchors: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(unit, mean, std, constant)`` per column: the anchors' mean and population std in units
    of ``unit``, a power of two near the column's largest magnitude (an exact rescaling, so that
    neither the sum nor the squared deviations overflow or underflow, however different the
    columns' magnitudes are), and which columns are constant (a spread at the rounding noise of
    their mean)."""
    unit = pow2_floor(anchors.detach().abs().amax(dim=0))
    unit_anchors = anchors / unit
    mean = unit_anchors.mean(dim=0)
    std = unit_anchors.std(dim=0, unbiased=False)
    eps = torch.finfo(anchors.dtype).eps
    constant = (std <= 10 * eps * mean.abs()) | (std == 0)
    return unit, mean, std, constant.detach()


def fit_absolute(name: str, anchors: Tensor) -> tuple[Tensor, Tensor]:
    """Fit ``(shift, scale)``, both ``(D,)``, of the absolute normalisation ``name`` on
    ``anchors (K, D)``; ``whiten`` also needs its matrix, :func:`fit_whitening`.

    Differentiable with respect to the anchors. A feature that is constant across the anchors
    gets scale 1 under ``standard`` and ``whiten`` (as scikit-learn's StandardScaler does), with
    a warning (``whiten`` then leaves them out, see :func:`fit_whitening`).
    """
    get_absolute(name)
    dim = anchors.shape[1]
    ones = torch.ones(dim, dtype=anchors.dtype, device=anchors.device)
    zeros = torch.zeros(dim, dtype=anchors.dtype, device=anchors.device)
    if name in ("none", "l2"):
        return zeros, ones
    unit, unit_shift, unit_scale, constant = _standard_statistics(anchors)
    if name == "center":
        return unit_shift * unit, ones
    scale = unit_scale * unit
    if bool(constant.any()):
        warn_user(
            f"anchors have {int(constant.sum())} constant feature(s) (e.g. dimension "
            f"{int(constant.nonzero()[0])}); their scale is set to 1 under {name!r} "
            "normalization" + (" and the whitening leaves them out" if name == "whiten" else "")
        )
        scale = torch.where(constant, ones, scale)
    return unit_shift * unit, scale


def _correlation(anchors: Tensor) -> tuple[Tensor, Tensor]:
    """``C = U^T U / K`` of the anchors standardised as by ``standard``, in float64, ``(D, D)``,
    and which features are constant ``(D,)``.

    Computed in units of a power of two per column (exact), so no difference overflows; a
    constant feature's column of ``U`` is 0 (so are its row and column of ``C``).
    """
    f64 = torch.float64
    unit, mean, std, constant = _standard_statistics(anchors)
    safe_std = torch.where(constant, torch.ones_like(std), std).to(f64)
    deviations = anchors.to(f64) / unit.to(f64) - mean.to(f64)
    standardised = torch.where(constant, 0.0, deviations / safe_std)
    return standardised.T @ standardised / anchors.shape[0], constant


def _damped_inverse_sqrt(eigenvalues: Tensor) -> Tensor:
    """``f(l) = l^(-1/2)`` for ``l >= tau``, ``(l / tau)^2 / sqrt(tau)`` below."""
    tau = WHITENING_FLOOR
    floored = eigenvalues.clamp_min(tau)
    return torch.where(eigenvalues >= tau, floored.rsqrt(), (eigenvalues / tau) ** 2 * tau**-0.5)


def _divided_differences(eigenvalues: Tensor, values: Tensor) -> Tensor:
    """``F_ij = (f(l_i) - f(l_j)) / (l_i - l_j)``, ``f'(l_i)`` on ties, in closed forms that
    need no difference of eigenvalues where both are on one side of the floor."""
    tau = WHITENING_FLOOR
    above = eigenvalues >= tau
    roots = eigenvalues.clamp_min(tau).sqrt()
    si, sj = roots[:, None], roots[None, :]
    both_above = above[:, None] & above[None, :]
    both_below = ~above[:, None] & ~above[None, :]
    gap = eigenvalues[:, None] - eigenvalues[None, :]
    across = (values[:, None] - values[None, :]) / torch.where(gap == 0, 1.0, gap)
    # Between the two sides the mean value theorem bounds the slope by the range of f'.
    across = across.clamp(-0.5 * tau**-1.5, 2.0 * tau**-1.5)
    inverse = -1.0 / (si * sj * (si + sj))
    quadratic = (eigenvalues[:, None] + eigenvalues[None, :]) * tau**-2.5
    return torch.where(both_above, inverse, torch.where(both_below, quadratic, across))


class _Whitening(torch.autograd.Function):
    """``W = V diag(f(lambda)) V^T`` of a symmetric matrix ``C = V diag(lambda) V^T``.

    The backward is the Daleckii-Krein formula, ``V ((V^T G V) o F) V^T`` with ``F`` the divided
    differences of ``f`` at the eigenvalues: closed forms that need no difference of
    eigenvalues, so repeated eigenvalues (K <= D) give a finite, exact gradient.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, correlation: Tensor) -> Tensor:
        with linalg_errors("the eigendecomposition of the anchors' correlation matrix"):
            eigenvalues, vectors = torch.linalg.eigh(correlation)
        values = _damped_inverse_sqrt(eigenvalues)
        ctx.save_for_backward(vectors, eigenvalues, values)
        whitening = (vectors * values) @ vectors.T
        return (whitening + whitening.T) / 2  # symmetric to the last bit

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> Tensor:
        vectors, eigenvalues, values = ctx.saved_tensors  # type: ignore[attr-defined]
        inner = vectors.T @ ((grad + grad.T) / 2) @ vectors
        return vectors @ (inner * _divided_differences(eigenvalues, values)) @ vectors.T


def fit_whitening(anchors: Tensor) -> Tensor:
    """The ``whiten`` matrix ``W``, ``(D, D)`` and symmetric, of ``anchors (K, D)``:
    ``n(z) = ((z - shift) / scale) W`` with ``(shift, scale) = fit_absolute("whiten", anchors)``.

    ``W = V diag(f(lambda)) V^T`` from the eigendecomposition of the anchors' correlation matrix,
    with ``f(l) = l^(-1/2)`` at or above :data:`WHITENING_FLOOR` and ``(l / tau)^2 / sqrt(tau)``
    below (see the module docstring): finite, with eigenvalues in ``[0, 100]``, and 0 in the row
    and column of a feature constant across the anchors. Computed in
    float64 (``O(K D^2 + D^3)`` time, ``O(D^2)`` memory) and returned in the anchors' dtype;
    differentiable with respect to the anchors, also where eigenvalues repeat (K <= D).

    Raises:
        ValueError: the eigendecomposition does not converge.
    """
    correlation, constant = _correlation(anchors)
    whitening: Tensor = _Whitening.apply(correlation)
    # A constant feature spans no direction: its row and column are 0 (not rounding noise).
    removed = constant[:, None] | constant[None, :]
    return torch.where(removed, 0.0, whitening).to(anchors.dtype)


def whitening_is_exact(anchors: Tensor) -> bool:
    """Whether ``whiten`` fitted on ``anchors (K, D)`` is an exact whitening: every eigenvalue of
    the anchors' correlation matrix is at least :data:`WHITENING_FLOOR` (which needs K > D and
    no constant feature). The normalised anchors then have zero mean and identity covariance.

    ``whiten``'s invariances to ``orthogonal`` and ``affine`` maps hold when this is true of the
    anchors of both spaces (``anchors`` and ``T(anchors)``).
    """
    with linalg_errors("the eigendecomposition of the anchors' correlation matrix"):
        smallest = torch.linalg.eigvalsh(_correlation(anchors.detach())[0])[0]
    return bool(smallest >= WHITENING_FLOOR)


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


def apply_absolute(
    name: str, x: Tensor, shift: Tensor, scale: Tensor, whitening: Tensor | None = None
) -> Tensor:
    """Apply the fitted absolute normalisation ``name`` to ``x (N, D)``.

    ``whitening`` is the ``(D, D)`` matrix of :func:`fit_whitening`, required by ``whiten`` and
    not used by the other normalisations.
    """
    if name == "none":
        return x
    if name == "l2":
        return l2_rows(x)
    standardised = (x - shift) / scale
    if not get_absolute(name).whitens:
        return standardised
    dim = x.shape[-1]
    if whitening is None or tuple(whitening.shape) != (dim, dim):
        got = "None" if whitening is None else f"shape {tuple(whitening.shape)}"
        raise ValueError(
            f"whitening must be the ({dim}, {dim}) matrix of fit_whitening(anchors) for the "
            f"{name!r} normalization, got {got}"
        )
    return standardised @ whitening


def apply_relative(name: str, relative: Tensor) -> Tensor:
    """Apply the relative normalisation ``name`` to ``relative (N, K)``."""
    if name == "none":
        return relative
    if name == "l2":
        return l2_rows(relative)
    if name == "standardize":
        return standardize_rows(relative)
    raise ValueError(f"relative_normalization must be one of {list(RELATIVE)}, got {name!r}")
