"""Relative projections: a registry of similarity functions with declared invariances.

A relative projection represents a sample ``z`` by its similarities to ``K`` anchors,
``r(z) = [d(z, a_1), ..., d(z, a_K)]``. ``r`` is invariant to a transformation ``T`` applied to
samples and anchors alike when ``d(T z, T a) = d(z, a)``.

Built-ins (``z`` a sample, ``a`` an anchor, both after the absolute normalisation):

=============  ==========================================  =====================================
name           d(z, a)                                     invariant to
=============  ==========================================  =====================================
``cosine``     <z, a> / (||z|| ||a||) (0 for a zero vector) orthogonal, isotropic_scaling
``euclidean``  ||z - a||_2                                 orthogonal, translation
``l1``         sum_k |z_k - a_k|                           permutation, sign_flip, translation
``linf``       max_k |z_k - a_k|                           permutation, sign_flip, translation
``dot``        <z, a>                                      orthogonal
``angular``    arccos(clamp(cosine, -1, 1)) / pi           orthogonal, isotropic_scaling
``rbf``        exp(-||z - a||^2 / s^2), s^2 the mean       orthogonal, translation,
               squared distance between distinct anchors   isotropic_scaling
=============  ==========================================  =====================================

``orthogonal`` implies ``permutation`` and ``sign_flip``; no projection is invariant to ``affine``
on its own, but cosine, euclidean, dot, angular and rbf become so after the ``whiten``
normalisation (:func:`effective_invariances`). Each projection also declares
``scaled_by``: classes under which ``r`` is multiplied by a positive constant (euclidean, l1 and
linf grow linearly with an isotropic scaling, dot quadratically), which a scale-removing relative
normalisation turns into invariances. Cost: O(N K D) time and O(N K) memory for every
projection. The distances run on the kernels of :mod:`latentbridge._kernels`: euclidean (and
rbf) as one matrix product on anchor-centred inputs, with the entries where that expansion
would cancel digits recomputed from coordinate differences, so nearby points far from the
origin keep their digits; L1 and L-infinity compiled with numba (the ``fast`` extra), else
``torch.cdist``. All are deterministic and differentiable (gradient 0 at zero distance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import overload

import torch
from torch import Tensor

from . import _kernels
from . import normalization as _norm
from ._scaling import max_abs, pow2_exponent, pow2_floor, times_pow2
from ._validation import (
    ArrayLike,
    as_matrix,
    check_finite,
    check_pair,
    compute_dtype,
    warn_duplicates,
)
from .transformations import closure, validate_classes

__all__ = [
    "PAPER_PRODUCT",
    "Projection",
    "available",
    "check_relative",
    "effective_invariances",
    "get",
    "register",
    "relative_projection",
    "unregister",
]

ProjectionFn = Callable[[Tensor, Tensor], Tensor]

#: The subspaces of the paper's product of invariances, in its order.
PAPER_PRODUCT: tuple[str, ...] = ("cosine", "euclidean", "l1", "linf")


@dataclass(frozen=True)
class Projection:
    """A registered relative projection.

    ``function(x, anchors)`` maps ``x (N, D)`` and ``anchors (K, D)`` (same dtype and device,
    already validated and normalised) to ``(N, K)``.
    """

    name: str
    function: ProjectionFn
    invariances: frozenset[str]
    scaled_by: frozenset[str]
    description: str

    def __call__(self, x: Tensor, anchors: Tensor) -> Tensor:
        return self.function(x, anchors)


_REGISTRY: dict[str, Projection] = {}
_BUILTINS: set[str] = set()


def available() -> list[str]:
    """Names of the registered projections, built-ins first, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> Projection:
    """The registered projection called ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"projection must be a string name, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"projection must be one of {available()}, got {name!r}") from None


@overload
def register(
    name: str,
    function: ProjectionFn,
    *,
    invariances: Iterable[str],
    scaled_by: Iterable[str] = (),
    description: str = "",
    overwrite: bool = False,
) -> Projection: ...


@overload
def register(
    name: str,
    function: None = None,
    *,
    invariances: Iterable[str],
    scaled_by: Iterable[str] = (),
    description: str = "",
    overwrite: bool = False,
) -> Callable[[ProjectionFn], ProjectionFn]: ...


def register(
    name: str,
    function: ProjectionFn | None = None,
    *,
    invariances: Iterable[str],
    scaled_by: Iterable[str] = (),
    description: str = "",
    overwrite: bool = False,
) -> Projection | Callable[[ProjectionFn], ProjectionFn]:
    """Register a projection with the transformation classes it is invariant to.

    Use as a call, ``register("name", fn, invariances={"orthogonal"})``, which returns the
    :class:`Projection`, or as a decorator, which returns the function unchanged::

        @latentbridge.projections.register("sqeuclidean", invariances={"orthogonal", "translation"},
                                           scaled_by={"isotropic_scaling"})
        def sqeuclidean(x, anchors):
            return torch.cdist(x, anchors).pow(2)

    ``invariances`` and ``scaled_by`` take names from
    :data:`latentbridge.transformations.TRANSFORMATIONS`; ``orthogonal`` implies ``permutation``
    and ``sign_flip``, which are added. The declaration is a promise that the test-suite (and
    :func:`latentbridge.analysis.verify_invariances`) checks numerically.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    declared = closure(validate_classes(invariances, "invariances"))
    scaled = closure(validate_classes(scaled_by, "scaled_by")) - declared

    def _register(fn: ProjectionFn) -> Projection:
        if not callable(fn):
            raise TypeError(f"function must be callable, got {type(fn).__name__}")
        if name in _REGISTRY and not overwrite:
            raise ValueError(
                f"a projection named {name!r} is already registered; pass overwrite=True to "
                "replace it"
            )
        if name in _BUILTINS and overwrite:
            raise ValueError(f"the built-in projection {name!r} cannot be replaced")
        projection = Projection(name, fn, declared, scaled, description or (fn.__doc__ or ""))
        _REGISTRY[name] = projection
        return projection

    if function is not None:
        return _register(function)

    def decorator(fn: ProjectionFn) -> ProjectionFn:
        _register(fn)
        return fn

    return decorator


def unregister(name: str) -> None:
    """Remove a user-registered projection."""
    if name in _BUILTINS:
        raise ValueError(f"the built-in projection {name!r} cannot be unregistered")
    get(name)
    del _REGISTRY[name]


def effective_invariances(
    projection: str,
    normalization: str = "none",
    relative_normalization: str = "none",
    *,
    exact_whitening: bool = True,
) -> frozenset[str]:
    """Transformation classes the configured projection is invariant to.

    The configuration computes ``relative_norm(projection(norm(x), norm(anchors)))``.

    A class ``T`` is an invariance when the absolute normalisation is invariant to it, or when
    the normalisation maps it to a class ``T'`` (``n(T z) = T'(n(z))``, see
    :attr:`latentbridge.normalization.AbsoluteNormalization.equivariances`) and either the
    projection is invariant to ``T'`` or the projection is rescaled by ``T'`` and the relative
    normalisation removes a positive scale. The result is closed under the subgroup relations
    of :func:`latentbridge.transformations.closure`.

    ``whiten`` turns orthogonal and affine maps into orthogonal ones only when its whitening is
    exact for the anchors of both spaces (K > D, well conditioned:
    :func:`latentbridge.normalization.whitening_is_exact`); these invariances are included by
    default, and left out with ``exact_whitening=False``, which gives the invariances that hold
    for any anchors.
    """
    proj = get(projection)
    absolute = _norm.get_absolute(normalization)
    relative = _norm.get_relative(relative_normalization)
    result = set(absolute.invariances)
    for kind, image in absolute.equivariances.items():
        if kind in absolute.exact_only and not exact_whitening:
            continue
        if image in proj.invariances or (relative.removes_scale and image in proj.scaled_by):
            result.add(kind)
    return closure(result)


# --------------------------------------------------------------------------------------------
# The built-in projections. Inputs are validated, normalised, of one dtype and device.


def _distance_scale(x: Tensor, anchors: Tensor, p: float) -> Tensor:
    """The power of two the inputs of a ``p``-distance are divided by (0-d): 1 in the safe range.

    Every coordinate difference of a pair is at most ``R``, the largest per-coordinate range of
    ``x`` and ``anchors`` together, computed in O((N + K) D) without overflow. Inside
    ``[lo, hi]`` neither the (squared) differences nor their sum can overflow and the squares of
    differences resolved by the dtype do not underflow, so the inputs are left alone (and the
    result is bit for bit the unscaled one); outside, they are divided by a power of two close to
    ``R``, which is exact.
    """
    fi = torch.finfo(x.dtype)
    dim = x.shape[1]
    if p == 2.0:
        lo, hi = (fi.tiny**0.5) / fi.eps, (fi.max / (16.0 * dim)) ** 0.5
    elif p == 1.0:
        lo, hi = fi.tiny / fi.eps, fi.max / (16.0 * dim)
    else:
        lo, hi = fi.tiny / fi.eps, fi.max / 16.0
    xd, ad = x.detach(), anchors.detach()
    top = torch.maximum(xd.amax(dim=0), ad.amax(dim=0))
    bottom = torch.minimum(xd.amin(dim=0), ad.amin(dim=0))
    half_range = (top / 2 - bottom / 2).amax()  # R / 2, which cannot overflow
    safe = (half_range >= lo / 2) & (half_range <= hi / 2)
    return torch.where(safe, torch.ones_like(half_range), pow2_floor(half_range))


_KERNELS = {2.0: _kernels.euclidean, 1.0: _kernels.l1, float("inf"): _kernels.linf}


def _distance(x: Tensor, anchors: Tensor, p: float) -> Tensor:
    # The kernels (latentbridge._kernels) keep the digits of nearby points far from the origin
    # and give a finite gradient (0) at zero distance. Outside the safe range the inputs are
    # rescaled by a power of two (exact), so no square overflows or underflows; the result
    # overflows to inf only where the true distance exceeds the dtype's range.
    if x.shape[0] == 0:  # the kernels keep the (empty) graph
        return _KERNELS[p](x, anchors)
    scale = _distance_scale(x, anchors, p)
    if bool(scale == 1):
        return _KERNELS[p](x, anchors)
    return _KERNELS[p](x / scale, anchors / scale) * scale


def _cosine(x: Tensor, anchors: Tensor) -> Tensor:
    """Cosine similarity; 0 when either vector is zero."""
    return _norm.l2_rows(x) @ _norm.l2_rows(anchors).T


def _euclidean(x: Tensor, anchors: Tensor) -> Tensor:
    """Euclidean distance."""
    return _distance(x, anchors, 2.0)


def _l1(x: Tensor, anchors: Tensor) -> Tensor:
    """Manhattan (L1) distance."""
    return _distance(x, anchors, 1.0)


def _linf(x: Tensor, anchors: Tensor) -> Tensor:
    """Chebyshev (L-infinity) distance."""
    return _distance(x, anchors, float("inf"))


def _dot(x: Tensor, anchors: Tensor) -> Tensor:
    """Inner product (the paper's "Orthogonal" subspace)."""
    # Each row is divided by a power of two near its largest entry (exact) and the products are
    # scaled back: the same bits as x @ anchors.T wherever that neither overflows nor underflows.
    row_exp = pow2_exponent(x.detach().abs().amax(dim=1, keepdim=True))
    anchor_exp = pow2_exponent(anchors.detach().abs().amax(dim=1, keepdim=True))
    unit = times_pow2(x, -row_exp) @ times_pow2(anchors, -anchor_exp).T
    return times_pow2(unit, row_exp + anchor_exp.T)


def _angular(x: Tensor, anchors: Tensor) -> Tensor:
    """Angle between the vectors divided by pi, in [0, 1]."""
    cos = _cosine(x, anchors).clamp(-1.0, 1.0)
    # arccos' is infinite at +-1: there (the tip of a cone) the gradient is taken as 0.
    margin = torch.finfo(cos.dtype).eps
    inside = cos.abs() < 1.0 - margin
    safe = torch.where(inside, cos, torch.zeros_like(cos))
    return torch.where(inside, torch.arccos(safe), torch.arccos(cos.detach())) / torch.pi


def _anchor_scale(anchors: Tensor) -> Tensor:
    """A power of two near the largest per-coordinate range of the anchors (0-d)."""
    ad = anchors.detach()
    return pow2_floor((ad.amax(dim=0) / 2 - ad.amin(dim=0) / 2).amax())


def _unit_bandwidth(anchors: Tensor) -> Tensor:
    """``s^2`` of ``anchors`` whose coordinate ranges are at most about 1 (see rbf_bandwidth)."""
    k = anchors.shape[0]
    if k < 2:
        raise ValueError("the rbf projection needs at least 2 anchors to set its bandwidth, got 1")
    spread = anchors.var(dim=0, unbiased=False).sum()
    bandwidth = spread * (2.0 * k / (k - 1))
    # Identical anchors leave only rounding noise, far below the anchors' own resolution.
    resolution = torch.finfo(anchors.dtype).eps * anchors.abs().max()
    if not bool(bandwidth > k * resolution**2):
        raise ValueError("the rbf projection needs distinct anchors; all anchors are identical")
    return bandwidth


def rbf_bandwidth(anchors: Tensor) -> Tensor:
    """``s^2``: the mean squared euclidean distance between two distinct anchors.

    Computed in O(K D) as ``2 K / (K - 1) * sum_d var(a_d)`` (population variance per dimension),
    on the anchors divided by a power of two near their range (exact), so it neither overflows
    nor underflows while computed; the result itself is ``inf`` where ``s^2`` exceeds the dtype.
    """
    scale = _anchor_scale(anchors)
    return _unit_bandwidth(anchors / scale) * scale * scale


def _rbf(x: Tensor, anchors: Tensor) -> Tensor:
    """Gaussian kernel of the euclidean distance, bandwidth set by the anchors' spread."""
    # In units of the anchors' range (an exact rescaling), where the kernel's precision lives:
    # a sample too far away for the dtype in those units gives exp(-inf) = 0, its true value.
    scale = _anchor_scale(anchors)
    unit_anchors = anchors / scale
    distance = _distance(x / scale, unit_anchors, 2.0)
    return torch.exp(-distance.pow(2) / _unit_bandwidth(unit_anchors))


for _name, _fn, _inv, _scaled in (
    ("cosine", _cosine, {"orthogonal", "isotropic_scaling"}, ()),
    ("euclidean", _euclidean, {"orthogonal", "translation"}, {"isotropic_scaling"}),
    ("l1", _l1, {"permutation", "sign_flip", "translation"}, {"isotropic_scaling"}),
    ("linf", _linf, {"permutation", "sign_flip", "translation"}, {"isotropic_scaling"}),
    ("dot", _dot, {"orthogonal"}, {"isotropic_scaling"}),
    ("angular", _angular, {"orthogonal", "isotropic_scaling"}, ()),
    ("rbf", _rbf, {"orthogonal", "translation", "isotropic_scaling"}, ()),
):
    register(_name, _fn, invariances=_inv, scaled_by=_scaled)
    _BUILTINS.add(_name)


# --------------------------------------------------------------------------------------------
# The functional entry point.


def project(
    x: Tensor,
    anchors: Tensor,
    projection: str,
    normalization: str,
    relative_normalization: str,
    shift: Tensor | None = None,
    scale: Tensor | None = None,
    whitening: Tensor | None = None,
    *,
    scale_free: bool = False,
) -> Tensor:
    """The projection pipeline on validated tensors; statistics fitted on ``anchors`` if absent
    (``shift``/``scale`` of :func:`latentbridge.normalization.fit_absolute`, and ``whitening``
    of :func:`latentbridge.normalization.fit_whitening` for a normalisation that whitens).

    With ``scale_free``, a projection invariant to or rescaled by ``isotropic_scaling`` runs on
    the normalised inputs divided by a power of two near their magnitude (exact): the result is
    the relative representation divided by a positive constant, which a scale-removing
    normalisation (the product's LayerNorm) cancels, so it is computed without overflow or
    underflow at any magnitude the dtype holds. Projections without that declaration run as is.
    """
    if shift is None or scale is None:
        shift, scale = _norm.fit_absolute(normalization, anchors)
    if whitening is None and _norm.get_absolute(normalization).whitens:
        whitening = _norm.fit_whitening(anchors)
    x_n = _norm.apply_absolute(normalization, x, shift, scale, whitening)
    a_n = _norm.apply_absolute(normalization, anchors, shift, scale, whitening)
    proj = get(projection)
    if scale_free and "isotropic_scaling" in proj.invariances | proj.scaled_by:
        unit = pow2_floor(max_abs(x_n, a_n))
        x_n, a_n = x_n / unit, a_n / unit
    relative = proj(x_n, a_n)
    return _norm.apply_relative(relative_normalization, relative)


def check_relative(relative: Tensor, projection: str) -> None:
    """Raise ``ValueError`` if a relative representation holds NaN or infinite values.

    With finite inputs this means that the true values do not fit the dtype (an overflow), or
    that a registered projection returned NaN; never hand such a tensor on silently.
    """
    finite = torch.isfinite(relative)
    if bool(finite.all()):
        return
    bad = int((~finite).sum())
    fi = torch.finfo(relative.dtype)
    hint = (
        "compute in float64 (pass x.double() and anchors.double())"
        if relative.dtype != torch.float64
        else "rescale or normalise the inputs (e.g. normalization='standard')"
    )
    raise ValueError(
        f"the {projection!r} relative representation has {bad} NaN or infinite value(s) for "
        f"finite x and anchors: its values do not fit {str(relative.dtype).replace('torch.', '')}"
        f" (largest finite {fi.max:.4g}); {hint}"
    )


def relative_projection(
    x: ArrayLike,
    anchors: ArrayLike,
    projection: str = "cosine",
    normalization: str = "none",
    relative_normalization: str = "none",
) -> Tensor:
    """Project samples onto anchors: ``(N, D), (K, D) -> (N, K)``.

    Args:
        x: samples, a tensor or numpy array of shape ``(N, D)``.
        anchors: the anchors' latents in the same space, ``(K, D)``, K >= 1.
        projection: a name from :func:`available` (``cosine``, ``euclidean``, ``l1``, ``linf``,
            ``dot``, ``angular``, ``rbf`` or a registered one).
        normalization: absolute-space normalisation fitted on ``anchors``: ``none``, ``center``,
            ``standard``, ``l2`` or ``whiten`` (see :mod:`latentbridge.normalization`; its
            affine invariance needs more anchors than dimensions, K > D).
        relative_normalization: ``none``, ``l2`` or ``standardize`` (across the K coordinates).

    Returns:
        ``(N, K)`` tensor on the input's device, in the promoted dtype of ``x`` and ``anchors``
        (half precision is computed in float32 and cast back). Differentiable with respect to
        both inputs. Invariant to :func:`effective_invariances` of the configuration.

    Raises:
        TypeError: non-floating or non-array input.
        ValueError: wrong rank, no features, mismatched feature dimensions or devices, no
            anchors, NaN or infinite values, unknown names, or a result whose values do not fit
            the output dtype (e.g. euclidean distances above 3.4e38 in float32, or dot products
            above 65504 in float16): compute in a wider dtype then. Results below the smallest
            normal number of the dtype are rounded as IEEE arithmetic rounds them (to denormals
            or zero).
    """
    get(projection)
    _norm.get_absolute(normalization)
    _norm.get_relative(relative_normalization)
    xt = as_matrix(x, "x", cols="D")
    at = as_matrix(anchors, "anchors", rows="K", cols="D")
    check_pair(xt, at)
    check_finite(xt, "x")
    check_finite(at, "anchors")
    warn_duplicates(at)
    dtype = compute_dtype(xt.dtype, at.dtype)
    out = project(xt.to(dtype), at.to(dtype), projection, normalization, relative_normalization)
    out = out.to(torch.promote_types(xt.dtype, at.dtype))
    check_relative(out, projection)
    return out
