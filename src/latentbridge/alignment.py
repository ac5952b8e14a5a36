"""Maps between two latent spaces, fitted on paired samples: the latent space translation baseline.

Given ``N`` paired samples (typically the anchors) encoded in two spaces, ``x (N, D_x)`` and
``y (N, D_y)``, an alignment estimator fits a map ``f`` from a transformation group with
``f(x) ≈ y`` in the least-squares sense, then translates new samples of ``x``'s space into
``y``'s space. This is the "latent space translation" of Maiorca et al. (NeurIPS 2023), the
baseline that zero-shot relative stitching is compared against: it needs both spaces, where
relative projections need only the anchors of each.

Every estimator fits a row-wise affine map ``f(z) = z @ W + b`` (row vectors, as everywhere in
latentbridge), with ``W`` restricted to its :attr:`~AlignmentEstimator.group`:

===============  ===============  =================================================  =========
estimator        ``group``        fitted map (least squares over the group)          inverse
===============  ===============  =================================================  =========
``Orthogonal``   ``orthogonal``   ``z Q``, ``Q^T Q = I`` (``det Q = +1`` if proper)  ``y Q^T``
``Similarity``   ``similarity``   ``s z Q + t``, ``s >= 0``, ``Q^T Q = I``           exact
``Affine``       ``affine``       ``z W + b`` (optionally ridge-penalised)           if square
``Linear``       ``linear``       ``z W`` (optionally ridge-penalised)               if square
``Permutation``  ``permutation``  ``z P``, ``P`` a permutation matrix                exact
===============  ===============  =================================================  =========

:class:`Translator` wraps any of them in the full recipe of the paper:
standard scaling of each space with its own statistics, dimension matching when
``D_x != D_y``, the estimator, then de-normalisation with ``y``'s statistics.

The estimators follow scikit-learn's contract: constructor arguments are stored unchanged and
checked in :meth:`~AlignmentEstimator.fit`, which returns ``self``; fitted attributes end with
``_`` and exist only after fitting; :meth:`~AlignmentEstimator.transform` returns a
``torch.Tensor`` in the dtype and on the device of its input. Fitting runs in float64 on the
device of ``x``, on detached inputs (the fitted map is data, not a node of an autograd graph);
``transform`` computes in float64 and is differentiable with respect to its input.

Fits and maps are computed at unit magnitude: each input is divided by a power of two taken from
its largest entry (exact in floating point) and the fitted maps are multiplied back, so every
estimator is equivariant to scaling the data, at any finite float64 magnitude (fitting on
``c x`` and ``c y`` gives the same map conjugated by ``c``: ``transform(c x) = c transform(x)``).
Inputs to ``transform`` and ``inverse_transform`` must be finite, 2-D, floating and as wide as in
``fit``; a result that does not fit the input's dtype (float16 beyond 65504, say) is a
``ValueError`` suggesting float64, never an ``inf``. A fit whose map is beyond the float64 range,
or whose linear algebra fails, is a ``ValueError`` and leaves the estimator unfitted.

Only torch and numpy are imported; :class:`Permutation` imports scipy when it is fitted
(``pip install 'latentbridge[alignment]'``).
"""

from __future__ import annotations

import inspect
import math
from numbers import Real
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor

from ._scaling import exponent, ldexp, pow2_floor
from ._validation import (
    ArrayLike,
    as_matrix,
    check_bool,
    check_choice,
    check_finite,
    linalg_errors,
)

__all__ = [
    "ESTIMATORS",
    "Affine",
    "AlignmentEstimator",
    "Linear",
    "Orthogonal",
    "Permutation",
    "Similarity",
    "Translator",
    "available",
    "clone",
    "get",
]

_F64 = torch.float64

#: Largest condition number of a square fitted weight that :meth:`inverse_transform` inverts:
#: the inverse then loses at most about ``1e10 * eps(float64) ≈ 2e-6`` relative accuracy.
_MAX_CONDITION = 1e10

_E = TypeVar("_E", bound="AlignmentEstimator")


# --------------------------------------------------------------------------------------------
# Input checks


def _check_ridge(value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"ridge must be a real number >= 0, got {type(value).__name__} {value!r}")
    ridge = float(value)
    if not math.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number >= 0, got {value!r}")
    return ridge


def _check_pair(x: ArrayLike, y: ArrayLike) -> tuple[Tensor, Tensor]:
    """Return the paired samples as detached float64 tensors on ``x``'s device."""
    xt = as_matrix(x, "x", rows="N", cols="D_x")
    yt = as_matrix(y, "y", rows="N", cols="D_y")
    if xt.shape[0] != yt.shape[0]:
        raise ValueError(
            "x and y must hold the same number of paired samples (rows), got x with "
            f"N={xt.shape[0]} and y with N={yt.shape[0]}"
        )
    if xt.shape[0] == 0:
        raise ValueError("x and y must hold at least one paired sample, got N=0")
    for name, t, cols in (("x", xt, "D_x"), ("y", yt, "D_y")):
        if t.shape[1] == 0:
            raise ValueError(
                f"{name} must have at least one feature ({cols} >= 1), got shape {tuple(t.shape)}"
            )
    if xt.device != yt.device:
        raise ValueError(
            f"x and y must be on the same device, got x on {xt.device} and y on {yt.device}"
        )
    check_finite(xt, "x")
    check_finite(yt, "y")
    return xt.detach().to(_F64), yt.detach().to(_F64)


# --------------------------------------------------------------------------------------------
# Magnitude: fits and maps run on data brought to unit scale by powers of two.


def _unit(t: Tensor) -> tuple[Tensor, int]:
    """``(t / 2^k, k)``, the largest magnitude of ``t / 2^k`` in [1, 2) (exact; ``k = 0`` for an
    all-zero ``t``)."""
    k = exponent(t)
    return ldexp(t, -k), k


def _matmul(a: Tensor, b: Tensor, mantissa: float = 1.0, exponent: int = 0) -> Tensor:
    """``mantissa 2^exponent a @ b`` with no overflow or underflow on the way: ``a`` and ``b``
    are brought to unit magnitude first and the powers of two are multiplied back once."""
    a_unit, ka = _unit(a)
    b_unit, kb = _unit(b)
    product = a_unit @ b_unit
    if mantissa != 1.0:
        product = product * mantissa
    return ldexp(product, ka + kb + exponent)


def _mean(z: Tensor) -> Tensor:
    """Column means as ``z_0 + mean(z - z_0)``: exactly ``z_0`` for a constant column, so that
    centring leaves it exactly 0 (a plain mean rounds, and the rounding would look like data)."""
    first = z[0]
    return first + (z - first).mean(dim=0)


def _column_scale(z: Tensor) -> Tensor:
    """Per column, the power of two ``p`` with ``max |z[:, j]| / p`` in [1, 2) (1 for a zero
    column); dividing by it is exact at any magnitude (z has at least one row)."""
    return pow2_floor(z.abs().amax(dim=0))


def _check_square(name: str, x: Tensor, y: Tensor) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{name} maps a space onto a space of the same dimension, got x with "
            f"D_x={x.shape[1]} and y with D_y={y.shape[1]}; use Translator(estimator="
            f"{name.lower()!r}, dim_matching='zero_padding' or 'pca') to match the dimensions"
        )


def _procrustes(m: Tensor, proper: bool) -> tuple[Tensor, Tensor]:
    """``(Q, S')`` with ``Q = U D V^T`` maximising ``tr(Q^T m)`` and ``S' = diag(D S)``.

    ``m = U S V^T``; ``D = I``, or for ``proper`` ``diag(1, ..., 1, det(U V^T))`` (Umeyama's
    sign correction: the best rotation flips the direction of the smallest singular value).
    """
    with linalg_errors("the SVD of the cross-covariance x^T y"):
        u, s, vh = torch.linalg.svd(m)
        flip = proper and bool(torch.linalg.det(u @ vh) < 0)
    if flip:
        u = u.clone()
        u[:, -1] = -u[:, -1]
        s = s.clone()
        s[-1] = -s[-1]
    return u @ vh, s


def _lstsq(a: Tensor, b: Tensor) -> Tensor:
    """Minimum-norm least-squares ``argmin_W ||a W - b||`` (SVD-based, solved on the CPU)."""
    with linalg_errors("the least-squares solve for the weight"):
        solution = torch.linalg.lstsq(a.cpu(), b.cpu(), driver="gelsd").solution
    return solution.to(a.device)


def _ridge(a: Tensor, b: Tensor, ridge: float) -> Tensor:
    """``W = (a^T a + lambda I)^{-1} a^T b`` with ``lambda = ridge tr(a^T a) / D``: the ridge
    normal equations, the penalty relative to the mean eigenvalue of ``a^T a`` (so that ``W``
    is equivariant to scaling ``a`` and ``b``). ``W = 0`` for ``a = 0``."""
    gram = a.T @ a
    trace = float(torch.trace(gram))
    if trace == 0.0:  # a = 0: the minimum-norm solution
        return torch.zeros(a.shape[1], b.shape[1], dtype=a.dtype, device=a.device)
    penalty = ridge * trace / gram.shape[0]
    if penalty == 0.0:  # a ridge below float64's resolution is no ridge
        return _lstsq(a, b)
    gram = gram + penalty * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    with linalg_errors(f"the ridge solve (ridge={ridge!r} relative to tr(x^T x) / D_x)"):
        return torch.linalg.solve(gram, a.T @ b)


def _invert_right(weight: Tensor, rhs: Tensor, name: str) -> Tensor:
    """Solve ``z @ weight = rhs`` for ``z`` when ``weight`` is square and well conditioned."""
    if weight.shape[0] != weight.shape[1]:
        raise ValueError(
            f"{name} is not invertible: it maps D_x={weight.shape[0]} onto "
            f"D_y={weight.shape[1]} dimensions; fit an estimator the other way instead, "
            "estimator.fit(y, x)"
        )
    unit_weight, kw = _unit(weight)
    unit_rhs, kr = _unit(rhs)
    with linalg_errors(f"the inversion of the fitted weight_ of {name}"):
        condition = float(torch.linalg.cond(unit_weight))
        if not condition < _MAX_CONDITION:
            raise ValueError(
                f"{name} is not invertible: its fitted weight_ has condition number "
                f"{condition:.3g} (limit {_MAX_CONDITION:.0e}); fit an estimator the other way "
                "instead, estimator.fit(y, x)"
            )
        solution = torch.linalg.solve(unit_weight, unit_rhs, left=False)
    return ldexp(solution, kr - kw)


# --------------------------------------------------------------------------------------------
# The estimator contract


class AlignmentEstimator:
    """Base class: a map from ``x``'s latent space to ``y``'s, fitted on paired samples.

    Subclasses implement ``_fit``, ``_transform`` and (where the map is invertible)
    ``_inverse_transform`` on float64 tensors; this class does the checks and conversions.

    Fitted attributes common to every estimator: ``n_features_in_`` (``D_x``) and
    ``n_features_out_`` (``D_y``).
    """

    #: The transformation group the estimator fits its map in.
    group: ClassVar[str] = ""

    n_features_in_: int
    n_features_out_: int

    # -- parameters (scikit-learn's get_params / set_params) ---------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p for p in signature.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as stored; ``deep`` adds ``estimator__param`` entries."""
        params = {name: getattr(self, name) for name in self._param_names()}
        if deep:
            for name, value in list(params.items()):
                if isinstance(value, AlignmentEstimator):
                    for key, inner in value.get_params(deep=True).items():
                        params[f"{name}__{key}"] = inner
        return params

    def set_params(self: _E, **params: Any) -> _E:
        """Set constructor arguments (``estimator__param`` reaches a nested estimator)."""
        valid = self._param_names()
        for key, value in params.items():
            name, _, inner = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; its parameters are {valid}"
                )
            if inner:
                nested = getattr(self, name)
                if not isinstance(nested, AlignmentEstimator):
                    raise ValueError(f"parameter {name!r} is not an estimator; cannot set {key!r}")
                nested.set_params(**{inner: value})
            else:
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    # -- fit / transform ---------------------------------------------------------------------

    def fit(self: _E, x: ArrayLike, y: ArrayLike) -> _E:
        """Fit the map on paired samples ``x (N, D_x)`` and ``y (N, D_y)``; return ``self``.

        Rows of ``x`` and ``y`` must describe the same samples, in the same order. Numpy
        arrays and tensors are accepted; the fit runs in float64 on ``x``'s device.
        """
        self._check_params()
        xs, ys = _check_pair(x, y)
        self._forget()  # a failed fit leaves the estimator unfitted, never half-fitted
        try:
            self._fit(xs, ys)
            self._check_fitted_values()
        except BaseException:
            self._forget()
            raise
        self.n_features_in_ = int(xs.shape[1])
        self.n_features_out_ = int(ys.shape[1])
        return self

    def transform(self, x: ArrayLike) -> Tensor:
        """Map ``x (M, D_x)`` into ``y``'s space: a tensor ``(M, D_y)`` in ``x``'s dtype.

        Raises ``ValueError`` for a non-finite ``x``, the wrong width, or a result beyond the
        range of ``x``'s dtype.
        """
        self._check_is_fitted()
        xt = self._check_input(x, "x", self.n_features_in_)
        return self._in_dtype(self._transform(xt.to(_F64)), xt.dtype, "transform", "x")

    def inverse_transform(self, y: ArrayLike) -> Tensor:
        """Map ``y (M, D_y)`` back into ``x``'s space: a tensor ``(M, D_x)`` in ``y``'s dtype.

        Raises ``ValueError`` where the fitted map is not invertible, and as :meth:`transform`.
        """
        self._check_is_fitted()
        yt = self._check_input(y, "y", self.n_features_out_)
        out = self._inverse_transform(yt.to(_F64))
        return self._in_dtype(out, yt.dtype, "inverse_transform", "y")

    def fit_transform(self, x: ArrayLike, y: ArrayLike) -> Tensor:
        """``fit(x, y).transform(x)``: the fitted samples of ``x`` mapped into ``y``'s space."""
        return self.fit(x, y).transform(x)

    # -- helpers -----------------------------------------------------------------------------

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise RuntimeError(
                f"this {type(self).__name__} is not fitted yet; call fit first, "
                f"e.g. {type(self).__name__}().fit(x, y)"
            )

    def _check_input(self, value: ArrayLike, name: str, dim: int) -> Tensor:
        tensor = as_matrix(value, name, rows="M", cols=f"{dim}")
        if tensor.shape[1] != dim:
            raise ValueError(
                f"{name} must have {dim} features (columns) as in fit, got shape "
                f"{tuple(tensor.shape)}"
            )
        check_finite(tensor, name)
        return tensor

    def _in_dtype(self, out: Tensor, dtype: torch.dtype, method: str, name: str) -> Tensor:
        """``out`` (float64) cast to ``dtype``, or a ``ValueError`` if it does not fit."""
        where = f"{type(self).__name__}.{method}({name})"
        if not bool(torch.isfinite(out).all()):
            raise ValueError(
                f"{where}: the result exceeds the float64 range (|value| > "
                f"{torch.finfo(_F64).max:.3g}); {name} is too large for the fitted map, rescale it"
            )
        cast = out.to(dtype)
        if dtype != _F64 and not bool(torch.isfinite(cast).all()):
            peak = float(out.detach().abs().amax())
            raise ValueError(
                f"{where}: the result does not fit in {dtype} (largest magnitude {peak:.3g}, "
                f"the dtype's limit is {torch.finfo(dtype).max:.3g}); pass {name} as float64, "
                f"e.g. {name}.double(), to get it"
            )
        return cast

    def _fitted_names(self) -> list[str]:
        return [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]

    def _forget(self) -> None:
        for key in self._fitted_names():
            delattr(self, key)

    def _check_fitted_values(self) -> None:
        """Every fitted tensor and number must be finite: else the map is beyond float64."""
        for key in self._fitted_names():
            value = getattr(self, key)
            finite = (
                bool(torch.isfinite(value).all())
                if isinstance(value, Tensor)
                else not isinstance(value, float) or math.isfinite(value)
            )
            if not finite:
                raise ValueError(
                    f"{type(self).__name__}: the fitted {key} is not finite in float64, so the "
                    "map from x to y cannot be represented: x is numerically rank-deficient "
                    "(a direction of tiny spread that y varies along) or x and y differ in "
                    "magnitude by a factor near the float64 range; rescale x or y, or "
                    "regularise (Affine/Linear with ridge > 0)"
                )

    def _check_params(self) -> None:
        """Check the constructor arguments (type and value); raise TypeError/ValueError."""

    def _fit(self, x: Tensor, y: Tensor) -> None:
        raise NotImplementedError

    def _transform(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _inverse_transform(self, y: Tensor) -> Tensor:
        raise ValueError(f"{type(self).__name__} has no inverse")


def clone(estimator: AlignmentEstimator) -> AlignmentEstimator:
    """A new, unfitted estimator with the same parameters (nested estimators cloned too)."""
    if not isinstance(estimator, AlignmentEstimator):
        raise TypeError(f"estimator must be an AlignmentEstimator, got {type(estimator).__name__}")
    params = {
        name: clone(value) if isinstance(value, AlignmentEstimator) else value
        for name, value in estimator.get_params(deep=False).items()
    }
    return type(estimator)(**params)


# --------------------------------------------------------------------------------------------
# The estimators


class _AffineForm(AlignmentEstimator):
    """An estimator whose fitted map is ``z @ weight_ + bias_``."""

    weight_: Tensor
    bias_: Tensor

    def _transform(self, x: Tensor) -> Tensor:
        return _matmul(x, self.weight_.to(x.device)) + self.bias_.to(x.device)


class Orthogonal(_AffineForm):
    """Orthogonal Procrustes: ``y ≈ x Q`` with ``Q^T Q = I``, no centring, scaling or bias.

    ``Q = argmin_{Q^T Q = I} ||x Q - y||_F = U V^T`` where ``x^T y = U S V^T`` (Schönemann
    1966). With ``proper=True`` ``Q`` is restricted to rotations (``det Q = +1``):
    ``Q = U diag(1, ..., 1, det(U V^T)) V^T`` (Umeyama 1991). Requires ``D_x == D_y``
    (:class:`Translator` matches dimensions). Cost: O(N D^2 + D^3).

    Args:
        proper: restrict to rotations.

    Fitted attributes:
        weight_: ``Q``, float64 ``(D, D)``.
        bias_: zeros ``(D,)`` (the group has no translation).

    ``inverse_transform(y) = y Q^T``, exact.
    """

    group: ClassVar[str] = "orthogonal"

    def __init__(self, proper: bool = False) -> None:
        self.proper = proper

    def _check_params(self) -> None:
        check_bool(self.proper, "proper")

    def _fit(self, x: Tensor, y: Tensor) -> None:
        _check_square("Orthogonal", x, y)
        # Q depends on x^T y only up to a positive factor: computed at unit magnitude.
        weight, _ = _procrustes(_unit(x)[0].T @ _unit(y)[0], bool(self.proper))
        self.weight_ = weight
        self.bias_ = torch.zeros(y.shape[1], dtype=_F64, device=y.device)

    def _inverse_transform(self, y: Tensor) -> Tensor:
        return _matmul(y, self.weight_.to(y.device).T)


class Similarity(_AffineForm):
    """Similarity (Umeyama 1991): ``y ≈ s x Q + t`` with ``s >= 0``, ``Q^T Q = I``.

    With the centred samples ``x_c = x - mean(x)``, ``y_c = y - mean(y)`` and
    ``x_c^T y_c = U S V^T``: ``Q = U D V^T`` (``D = I``, or for ``proper=True``
    ``diag(1, ..., 1, det(U V^T))``), ``s = tr(D S) / ||x_c||_F^2`` and
    ``t = mean(y) - s mean(x) Q``. Requires ``D_x == D_y`` and a non-constant ``x``.

    Args:
        proper: restrict ``Q`` to rotations.

    Fitted attributes:
        scale_: ``s``, a float.
        weight_: ``Q``, float64 ``(D, D)`` (the map's linear part is ``scale_ * weight_``).
        bias_: ``t``, float64 ``(D,)``.

    ``inverse_transform(y) = (y - t) Q^T / s``, exact when ``s > 0``.
    """

    group: ClassVar[str] = "similarity"

    scale_: float

    def __init__(self, proper: bool = False) -> None:
        self.proper = proper

    def _check_params(self) -> None:
        check_bool(self.proper, "proper")

    def _fit(self, x: Tensor, y: Tensor) -> None:
        _check_square("Similarity", x, y)
        # At unit magnitude: x = 2^kx xs, y = 2^ky ys, so s = 2^(ky - kx) s' and t = 2^ky t'.
        (xs, kx), (ys, ky) = _unit(x), _unit(y)
        mean_x, mean_y = _mean(xs), _mean(ys)
        xc, yc = xs - mean_x, ys - mean_y
        variance = float(xc.pow(2).sum())
        if variance == 0.0:
            raise ValueError(
                "x must not be constant: Similarity needs at least two distinct rows of x to "
                "fit a scale"
            )
        weight, s = _procrustes(xc.T @ yc, bool(self.proper))
        unit_scale = float(s.sum()) / variance
        try:
            scale = math.ldexp(unit_scale, ky - kx)
        except OverflowError:
            scale = math.inf
        if unit_scale > 0 and not 0.0 < scale < math.inf:
            raise ValueError(
                f"Similarity: the fitted scale {unit_scale:.6g} * 2^{ky - kx} is beyond the "
                "float64 range (x and y differ in magnitude by a factor near 1e308 or more); "
                "rescale x or y"
            )
        self.scale_ = scale
        self.weight_ = weight
        self.bias_ = ldexp(mean_y - unit_scale * (mean_x @ weight), ky)

    def _transform(self, x: Tensor) -> Tensor:
        mantissa, exponent = math.frexp(self.scale_)
        weight = self.weight_.to(x.device)
        return _matmul(x, weight, mantissa, exponent) + self.bias_.to(x.device)

    def _inverse_transform(self, y: Tensor) -> Tensor:
        if not self.scale_ > 0:
            raise ValueError(
                f"Similarity is not invertible: its fitted scale_ is {self.scale_}; fit an "
                "estimator the other way instead, estimator.fit(y, x)"
            )
        mantissa, exponent = math.frexp(self.scale_)  # 1 / s = (1 / m) 2^-e, never overflows
        weight = self.weight_.to(y.device)
        return _matmul(y - self.bias_.to(y.device), weight.T, 1.0 / mantissa, -exponent)


class Affine(_AffineForm):
    """Affine least squares: ``y ≈ x W + b``, optionally ridge-penalised.

    With ``x_c``, ``y_c`` centred: ``W = argmin ||x_c W - y_c||_F^2 + lambda ||W||_F^2``, i.e.
    ``(x_c^T x_c + lambda I) W = x_c^T y_c``, and ``b = mean(y) - mean(x) W``; the bias is not
    penalised (as in scikit-learn's ``Ridge``). The penalty is relative to the data,
    ``lambda = ridge tr(x_c^T x_c) / D_x`` (``ridge`` times the mean eigenvalue of the scatter
    matrix; scikit-learn's ``alpha`` is ``lambda``), so the fit is equivariant to scaling ``x``
    and ``y`` and ``ridge`` has the same effect at every magnitude. With ``ridge == 0`` the
    problem is solved by an SVD-based least squares on ``x_c`` (the minimum-norm ``W`` when
    ``x_c`` is rank-deficient, e.g. for constant "dead" units) and needs ``N >= D_x + 1``.
    Cost: O(N D_x^2 + D_x^3).

    Args:
        ridge: the relative L2 penalty on ``W``, a number ``>= 0`` (e.g. ``1e-3``).

    Fitted attributes:
        weight_: ``W``, float64 ``(D_x, D_y)``.
        bias_: ``b``, float64 ``(D_y,)``.

    ``inverse_transform`` exists when ``W`` is square and well conditioned.
    """

    group: ClassVar[str] = "affine"

    def __init__(self, ridge: float = 0.0) -> None:
        self.ridge = ridge

    def _check_params(self) -> None:
        _check_ridge(self.ridge)

    def _fit(self, x: Tensor, y: Tensor) -> None:
        ridge = _check_ridge(self.ridge)
        n, d = x.shape
        if ridge == 0 and n < d + 1:
            raise ValueError(
                f"Affine with ridge=0 needs N >= D_x + 1 paired samples to determine the map, "
                f"got N={n} and D_x={d}; use more samples or a ridge > 0, e.g. "
                "Affine(ridge=1e-3)"
            )
        # At unit magnitude: x = 2^kx xs, y = 2^ky ys, so W = 2^(ky - kx) W' and b = 2^ky b'.
        (xs, kx), (ys, ky) = _unit(x), _unit(y)
        mean_x, mean_y = _mean(xs), _mean(ys)
        xc, yc = xs - mean_x, ys - mean_y
        weight = _lstsq(xc, yc) if ridge == 0 else _ridge(xc, yc, ridge)
        self.weight_ = ldexp(weight, ky - kx)
        self.bias_ = ldexp(mean_y - mean_x @ weight, ky)

    def _inverse_transform(self, y: Tensor) -> Tensor:
        weight = self.weight_.to(y.device)
        return _invert_right(weight, y - self.bias_.to(y.device), "Affine")


class Linear(_AffineForm):
    """Linear least squares through the origin: ``y ≈ x W``, optionally ridge-penalised.

    ``W = argmin ||x W - y||_F^2 + lambda ||W||_F^2``, i.e. ``(x^T x + lambda I) W = x^T y``;
    no centring and no bias. The penalty is relative, ``lambda = ridge tr(x^T x) / D_x`` (as in
    :class:`Affine`, uncentred here). With ``ridge == 0`` the problem is solved by an SVD-based
    least squares (minimum-norm ``W`` when ``x`` is rank-deficient) and needs ``N >= D_x``.

    Args:
        ridge: the relative L2 penalty on ``W``, a number ``>= 0``.

    Fitted attributes:
        weight_: ``W``, float64 ``(D_x, D_y)``.
        bias_: zeros ``(D_y,)``.

    ``inverse_transform`` exists when ``W`` is square and well conditioned.
    """

    group: ClassVar[str] = "linear"

    def __init__(self, ridge: float = 0.0) -> None:
        self.ridge = ridge

    def _check_params(self) -> None:
        _check_ridge(self.ridge)

    def _fit(self, x: Tensor, y: Tensor) -> None:
        ridge = _check_ridge(self.ridge)
        n, d = x.shape
        if ridge == 0 and n < d:
            raise ValueError(
                f"Linear with ridge=0 needs N >= D_x paired samples to determine the map, got "
                f"N={n} and D_x={d}; use more samples or a ridge > 0, e.g. Linear(ridge=1e-3)"
            )
        (xs, kx), (ys, ky) = _unit(x), _unit(y)  # W = 2^(ky - kx) W'
        weight = _lstsq(xs, ys) if ridge == 0 else _ridge(xs, ys, ridge)
        self.weight_ = ldexp(weight, ky - kx)
        self.bias_ = torch.zeros(y.shape[1], dtype=_F64, device=y.device)

    def _inverse_transform(self, y: Tensor) -> Tensor:
        return _invert_right(self.weight_.to(y.device), y, "Linear")


_CRITERIA: tuple[str, ...] = ("correlation", "sqeuclidean")


class Permutation(_AffineForm):
    """Unit matching: ``y[:, j] ≈ x[:, p(j)]`` for a permutation ``p`` of the ``D`` columns.

    ``p`` solves a linear assignment problem over the ``D x D`` matrix comparing every column of
    ``x`` with every column of ``y`` (the Hungarian algorithm, scipy's
    ``linear_sum_assignment``, O(D^3)):

    - ``"correlation"``: maximise ``sum_j corr(x[:, p(j)], y[:, j])`` (Pearson correlation
      across the ``N`` samples; a constant column correlates 0 with everything). Invariant to
      per-unit positive scaling and shifts; needs ``N >= 2``.
    - ``"sqeuclidean"``: minimise ``sum_j ||x[:, p(j)] - y[:, j]||^2``.

    Requires ``D_x == D_y`` and scipy (``pip install 'latentbridge[alignment]'``).

    Args:
        criterion: ``"correlation"`` or ``"sqeuclidean"``.

    Fitted attributes:
        permutation_: ``p``, a torch int64 tensor ``(D,)``.
        weight_: the permutation matrix ``P`` (``P[p(j), j] = 1``), float64 ``(D, D)``.
        bias_: zeros ``(D,)``.

    ``transform`` and ``inverse_transform`` reorder columns: exact.
    """

    group: ClassVar[str] = "permutation"

    permutation_: Tensor

    def __init__(self, criterion: str = "correlation") -> None:
        self.criterion = criterion

    def _check_params(self) -> None:
        check_choice(self.criterion, "criterion", _CRITERIA)

    def _fit(self, x: Tensor, y: Tensor) -> None:
        try:
            from scipy.optimize import linear_sum_assignment
        except ImportError as error:
            raise ImportError(
                "Permutation needs scipy for the Hungarian algorithm; install it with "
                "pip install 'latentbridge[alignment]'"
            ) from error
        _check_square("Permutation", x, y)
        n, d = x.shape
        if self.criterion == "correlation":
            if n < 2:
                raise ValueError(
                    f"Permutation(criterion='correlation') needs N >= 2 paired samples, got N={n}"
                )
            score = _unit_columns(x).T @ _unit_columns(y)
            maximize = True
        else:
            # One power of two for both: the order of the distances is unchanged.
            k = max(exponent(x), exponent(y))
            xs, ys = ldexp(x, -k), ldexp(y, -k)
            score = torch.cdist(xs.T, ys.T, compute_mode="donot_use_mm_for_euclid_dist").pow(2)
            maximize = False
        rows, cols = linear_sum_assignment(score.cpu().numpy(), maximize=maximize)
        permutation = np.empty(d, dtype=np.int64)
        permutation[cols] = rows
        perm = torch.from_numpy(permutation).to(x.device)
        weight = torch.zeros(d, d, dtype=_F64, device=x.device)
        weight[perm, torch.arange(d, device=x.device)] = 1.0
        self.permutation_ = perm
        self.weight_ = weight
        self.bias_ = torch.zeros(d, dtype=_F64, device=x.device)

    def _transform(self, x: Tensor) -> Tensor:
        return x[:, self.permutation_.to(x.device)]

    def _inverse_transform(self, y: Tensor) -> Tensor:
        return y[:, torch.argsort(self.permutation_).to(y.device)]


def _unit_columns(z: Tensor) -> Tensor:
    """Centre each column and scale it to unit norm (constant columns stay zero), each column
    first brought to unit magnitude."""
    z = z / _column_scale(z)
    centred = z - _mean(z)
    norm = torch.linalg.vector_norm(centred, dim=0)
    return torch.where(norm > 0, centred / torch.where(norm > 0, norm, 1.0), 0.0)


#: The estimators by name (the names :class:`Translator` accepts).
ESTIMATORS: dict[str, type[AlignmentEstimator]] = {
    "orthogonal": Orthogonal,
    "similarity": Similarity,
    "affine": Affine,
    "linear": Linear,
    "permutation": Permutation,
}


def available() -> list[str]:
    """The names of the estimators, in the order of ``ESTIMATORS``."""
    return list(ESTIMATORS)


def get(name: str) -> type[AlignmentEstimator]:
    """The estimator class registered as ``name``, e.g. ``get("orthogonal")(proper=True)``."""
    return ESTIMATORS[check_choice(name, "name", tuple(ESTIMATORS))]


# --------------------------------------------------------------------------------------------
# The latent translation recipe


_DIM_MATCHING: tuple[str, ...] = ("zero_padding", "pca")


class Translator(AlignmentEstimator):
    """Latent space translation (Maiorca et al., NeurIPS 2023): normalise, match, map, restore.

    ``transform(x) = decode_y(f(encode_x(x)))`` where, with statistics fitted on ``(x, y)``:

    1. standard scaling of each space with its own statistics, ``(z - mean) / std`` (std over
       the ``N`` samples, without Bessel's correction). A feature constant over the fit
       samples has no spread of its own: it gets the space's, the root mean square of the
       other features' stds (or, when every feature is constant, the largest ``|mean|``; an
       all-zero space is refused), so that the translation stays equivariant to scaling the
       data (scikit-learn's ``StandardScaler`` uses 1, which would make a held-out deviation
       in such a feature count ``c`` times more in data scaled by ``c``);
    2. dimension matching to ``dim_ = max(D_x, D_y)`` by ``"zero_padding"`` (the narrower
       space is padded with zero columns, and output columns beyond ``D_y`` are dropped), or
       to ``dim_ = min(D_x, D_y)`` by ``"pca"`` (the wider space is projected onto its
       ``dim_`` leading principal directions, from the SVD of its centred fit samples; an
       output in ``y``'s reduced coordinates is mapped back with the same directions);
    3. the estimator ``f`` (a name in :data:`ESTIMATORS` or an estimator instance, which is
       cloned and never fitted itself) fitted between the matched spaces;
    4. de-normalisation with ``y``'s statistics, ``u * std_y + mean_y``.

    The whole map is affine. Without dimension matching it is exactly a map of the estimator's
    group conjugated by the two standardisations, so its :attr:`group` is ``"composite"``:
    see ``estimator_.group``.

    Args:
        estimator: ``"orthogonal"`` (the paper's default), ``"similarity"``, ``"affine"``,
            ``"linear"``, ``"permutation"`` or an :class:`AlignmentEstimator`.
        std_scaling: standardise both spaces (step 1); ``False`` skips it, except that when
            ``"pca"`` matches dimensions both spaces are still centred (PCA coordinates are
            centred, and a bias-free estimator could not map them onto an uncentred space).
        dim_matching: ``"zero_padding"`` or ``"pca"``; used only when ``D_x != D_y``.

    Fitted attributes:
        estimator_: the fitted clone of ``estimator``.
        x_mean_, x_scale_: ``(D_x,)`` float64, subtracted from and dividing ``x`` (zeros and
            ones where not used); ``y_mean_``, ``y_scale_`` likewise for ``y``.
        dim_: the dimension the estimator works in.
        x_components_, y_components_: ``(dim_, D)`` principal directions (orthonormal rows) of
            the space reduced by ``"pca"``, else ``None``.

    ``inverse_transform`` exists when ``D_x == D_y`` and the estimator is invertible.
    """

    group: ClassVar[str] = "composite"

    estimator_: AlignmentEstimator
    x_mean_: Tensor
    x_scale_: Tensor
    y_mean_: Tensor
    y_scale_: Tensor
    dim_: int
    x_components_: Tensor | None
    y_components_: Tensor | None

    def __init__(
        self,
        estimator: str | AlignmentEstimator = "orthogonal",
        std_scaling: bool = True,
        dim_matching: str = "zero_padding",
    ) -> None:
        self.estimator = estimator
        self.std_scaling = std_scaling
        self.dim_matching = dim_matching

    def _check_params(self) -> None:
        self._make_estimator()
        check_bool(self.std_scaling, "std_scaling")
        check_choice(self.dim_matching, "dim_matching", _DIM_MATCHING)

    def _make_estimator(self) -> AlignmentEstimator:
        if isinstance(self.estimator, AlignmentEstimator):
            return clone(self.estimator)
        if isinstance(self.estimator, str) and self.estimator in ESTIMATORS:
            return ESTIMATORS[self.estimator]()
        raise ValueError(
            f"estimator must be one of {available()} or an AlignmentEstimator instance, got "
            f"{self.estimator!r}"
        )

    def _fit(self, x: Tensor, y: Tensor) -> None:
        n, dx = x.shape
        dy = y.shape[1]
        pca = self.dim_matching == "pca" and dx != dy
        dim = min(dx, dy) if pca else max(dx, dy)
        if pca and n < dim:
            raise ValueError(
                f"dim_matching='pca' needs N >= min(D_x, D_y) = {dim} paired samples to find "
                f"{dim} principal directions, got N={n}; use dim_matching='zero_padding'"
            )
        # PCA coordinates are centred, so with "pca" both spaces are centred.
        x_mean, x_scale = _statistics(x, bool(self.std_scaling), center=pca, name="x")
        y_mean, y_scale = _statistics(y, bool(self.std_scaling), center=pca, name="y")
        xn, yn = (x - x_mean) / x_scale, (y - y_mean) / y_scale
        x_components = _principal_directions(xn, dim) if pca and dx > dy else None
        y_components = _principal_directions(yn, dim) if pca and dy > dx else None

        estimator = self._make_estimator()
        target = _match(yn, y_components, dim)
        estimator.fit(_match(xn, x_components, dim), target)

        self.estimator_ = estimator
        self.x_mean_, self.x_scale_ = x_mean, x_scale
        self.y_mean_, self.y_scale_ = y_mean, y_scale
        self.dim_ = dim
        self.x_components_, self.y_components_ = x_components, y_components

    def _transform(self, x: Tensor) -> Tensor:
        device = x.device
        xn = (x - self.x_mean_.to(device)) / self.x_scale_.to(device)
        x_components = None if self.x_components_ is None else self.x_components_.to(device)
        # The fitted estimator's own map, in float64 (this method's caller checks the result).
        u = self.estimator_._transform(_match(xn, x_components, self.dim_))
        if self.y_components_ is not None:
            u = _matmul(u, self.y_components_.to(device))
        else:
            u = u[:, : self.y_mean_.shape[0]]
        return u * self.y_scale_.to(device) + self.y_mean_.to(device)

    def _inverse_transform(self, y: Tensor) -> Tensor:
        if self.n_features_in_ != self.n_features_out_:
            raise ValueError(
                "Translator is not invertible when it matches dimensions (fitted with "
                f"D_x={self.n_features_in_} and D_y={self.n_features_out_}); fit a Translator "
                "the other way instead, Translator(...).fit(y, x)"
            )
        device = y.device
        yn = (y - self.y_mean_.to(device)) / self.y_scale_.to(device)
        xn = self.estimator_._inverse_transform(yn)
        return xn * self.x_scale_.to(device) + self.x_mean_.to(device)


def _statistics(z: Tensor, std_scaling: bool, *, center: bool, name: str) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` of the columns of ``z`` for standard scaling, each column computed at
    unit magnitude (a constant feature gets the space's scale, see :class:`Translator`)."""
    ones = torch.ones(z.shape[1], dtype=z.dtype, device=z.device)
    if not (std_scaling or center):
        return torch.zeros_like(ones), ones
    column = _column_scale(z)
    unit = z / column
    mean = _mean(unit)
    if not std_scaling:
        return mean * column, ones
    std = (unit - mean).square().mean(dim=0).sqrt()  # population std; 0 for N = 1
    # A feature constant up to rounding has no scale of its own.
    constant = (std == 0) | (std <= 10 * torch.finfo(z.dtype).eps * mean.abs())
    mean, std = mean * column, std * column
    if not bool(constant.any()):
        return mean, std
    return mean, torch.where(constant, _space_scale(mean, std, constant, name), std)


def _space_scale(mean: Tensor, std: Tensor, constant: Tensor, name: str) -> Tensor:
    """The scale of a space for its constant features: the root mean square of the other
    features' stds; with none, the largest ``|mean|``; an all-zero space has none."""
    if not bool(constant.all()):
        spread, k = _unit(std[~constant])
        return ldexp(spread.square().mean().sqrt(), k)
    peak = mean.abs().amax()
    if not bool(peak > 0):
        raise ValueError(
            f"{name} is 0 in every sample and feature, so standard scaling has no scale to "
            "use (any would be arbitrary); pass std_scaling=False"
        )
    return peak


def _principal_directions(z: Tensor, dim: int) -> Tensor:
    """The ``dim`` leading right singular vectors ``(dim, D)`` of ``z`` centred (PCA axes)."""
    unit, _ = _unit(z)  # the directions are unchanged by a positive factor
    with linalg_errors("the SVD for the principal directions (dim_matching='pca')"):
        _, _, vh = torch.linalg.svd(unit - _mean(unit), full_matrices=False)
    return vh[:dim]


def _match(z: Tensor, components: Tensor | None, dim: int) -> Tensor:
    """Project ``z`` onto ``components`` if given, then pad it with zero columns up to ``dim``."""
    if components is not None:
        z = _matmul(z, components.T)
    if z.shape[1] < dim:
        z = torch.nn.functional.pad(z, (0, dim - z.shape[1]))
    return z
