"""Latent-space similarity measures: how alike two representations of the same N samples are.

Every measure has the signature ``metric(x, y, **options)`` for paired inputs ``x (N, D1)`` and
``y (N, D2)`` (row ``i`` of both describes sample ``i``), numpy arrays or torch tensors of any
floating dtype. Computation runs in float64 on the inputs' device; the result is a Python
``float`` (:func:`retrieval` returns a :class:`RetrievalScores`, :func:`canonical_correlations`
a tensor).

=============================  ==============================================  ================
measure                        what it compares                                invariant to
=============================  ==============================================  ================
:func:`linear_cka`             centred linear Gram matrices (HSIC)             orthogonal,
                                                                               translation,
                                                                               isotropic scale
:func:`rbf_cka`                centred Gaussian Gram matrices                  orthogonal,
                                                                               translation (+
                                                                               isotropic scale
                                                                               with the median
                                                                               bandwidth)
:func:`procrustes_distance`    min over orthogonal Q of ||X - Y Q||_F          orthogonal,
                                                                               translation,
                                                                               isotropic scale
:func:`bures_similarity`       ||X^T Y||_* (normalised Bures similarity)       same
:func:`svcca`                  CCA of the leading principal subspaces          invertible
                                                                               linear maps (of
                                                                               the kept span)
:func:`jaccard_knn`,           overlap of the k-nearest-neighbour sets         orthogonal (+
:func:`mutual_knn`                                                             translation,
                                                                               euclidean)
:func:`retrieval`              rank of y_i among all y_j for the query x_i     shared-space
                                                                               measure
:func:`mean_cosine`            mean_i cos(x_i, y_i)                            shared-space
                                                                               measure
:func:`distance_correlation`   correlation of the pairwise distance vectors    orthogonal,
                                                                               translation
=============================  ==============================================  ================

Inputs are validated at the boundary: both 2-D floating arrays on one device, the same number
of samples, finite values, enough samples for the estimator (the error states the minimum).
Nothing is computed at import; the module needs only torch and numpy.

Every measure is computed at unit magnitude, whatever the magnitude of its inputs (any finite
float64, 1e-300 or 1e300 alike, and every float32, float16 and bfloat16 value): each input is
divided by a power of two taken from its largest entry (exact in floating point), and the
row-wise measures (cosines) scale each row by its own largest entry. An input scaled by a power
of two (its entries staying normal floats) therefore gives bit-for-bit the same value. A value
that is mathematically undefined (zero variance, a constant kernel) is a ``ValueError``, never
NaN; a linear-algebra routine that fails (an SVD that does not converge) is a ``ValueError``
naming the input too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ._scaling import exponent, ldexp, pow2_factors
from ._validation import (
    ArrayLike,
    as_matrix,
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_positive_int,
    linalg_errors,
)
from .normalization import l2_rows

__all__ = [
    "CKA_AUTO_MEMORY_BUDGET",
    "DISTANCE_CORRELATION_MAX_N",
    "RetrievalScores",
    "bures_similarity",
    "canonical_correlations",
    "distance_correlation",
    "jaccard_knn",
    "linear_cka",
    "mean_cosine",
    "mutual_knn",
    "procrustes_distance",
    "rbf_cka",
    "retrieval",
    "svcca",
]

#: Bytes of float64 working memory above which ``linear_cka(method="auto")`` streams (1 GiB).
CKA_AUTO_MEMORY_BUDGET = 1 << 30

#: Largest N accepted by :func:`distance_correlation` (it holds N (N - 1) / 2 distances per input).
DISTANCE_CORRELATION_MAX_N = 10_000

_F64 = torch.float64
_EPS = torch.finfo(_F64).eps  # 2^-52
_BLOCK_BYTES = 1 << 25  # 32 MiB: the size of one float64 working block in the chunked loops
_CKA_METHODS = ("auto", "feature", "gram", "streaming")
_KNN_METRICS = ("cosine", "euclidean")
_CORRELATIONS = ("pearson", "spearman")
_DISTANCES = ("euclidean", "cosine")
# A debiased HSIC(K, K) below this fraction of ||K||_F^2 / (n (n - 3)) is rounding noise: the
# (U-centred) kernel is zero and CKA is undefined.
_DEBIASED_ZERO = 1e-10


# --------------------------------------------------------------------------------------------
# Validation and chunking helpers.


def _paired(
    x: object,
    y: object,
    *,
    function: str,
    min_samples: int,
    same_dim: bool = False,
) -> tuple[Tensor, Tensor]:
    """Validate a pair of sample matrices; return them detached, in their own dtype."""
    cols_x, cols_y = ("D", "D") if same_dim else ("D1", "D2")
    xt = as_matrix(x, "x", cols=cols_x)
    yt = as_matrix(y, "y", cols=cols_y)
    if xt.shape[0] != yt.shape[0]:
        raise ValueError(
            f"x and y must have the same number of samples, got N={xt.shape[0]} and N={yt.shape[0]}"
        )
    for name, t in (("x", xt), ("y", yt)):
        if t.shape[1] == 0:
            raise ValueError(f"{name} must have at least one feature, got shape {tuple(t.shape)}")
    if same_dim and xt.shape[1] != yt.shape[1]:
        raise ValueError(
            f"{function} compares x and y in one shared space, so they must have the same "
            f"feature dimension, got x with D={xt.shape[1]} and y with D={yt.shape[1]}"
        )
    if xt.device != yt.device:
        raise ValueError(
            f"x and y must be on the same device, got x on {xt.device} and y on {yt.device}"
        )
    n = xt.shape[0]
    if n < min_samples:
        raise ValueError(
            f"{function} needs at least {min_samples} samples, got N={n} (the rows of x and y)"
        )
    _check_finite_rows(xt, "x")
    _check_finite_rows(yt, "y")
    return xt.detach(), yt.detach()


def _rows(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive row chunks of at most ``size`` rows."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _block_rows(width: int) -> int:
    """Rows of a float64 block of ``width`` columns that fit in the working-block budget."""
    return max(1, _BLOCK_BYTES // (8 * max(width, 1)))


def _check_finite_rows(t: Tensor, name: str) -> None:
    # Chunked so that the check costs O(chunk * D) memory; the full scan only reports.
    for start, stop in _rows(t.shape[0], _block_rows(t.shape[1])):
        if not bool(torch.isfinite(t[start:stop]).all()):
            check_finite(t, name)


def _check_chunk_size(chunk_size: object) -> int | None:
    return None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")


def _rows_identical(t: Tensor) -> bool:
    """Whether every row of ``t`` equals the first (zero variance in every feature), exactly."""
    first = t[:1]
    return all(
        bool((t[start:stop] == first).all())
        for start, stop in _rows(t.shape[0], _block_rows(t.shape[1]))
    )


def _require_variance(t: Tensor, name: str, function: str) -> None:
    if _rows_identical(t):
        raise ValueError(
            f"{name} has zero variance (every row is identical, so every feature is constant); "
            f"{function} is undefined for it"
        )


# --------------------------------------------------------------------------------------------
# Magnitude: every computation runs on data brought to unit scale by a power of two.


def _f64(t: Tensor, k: int = 0) -> Tensor:
    """A float64 copy of ``t`` divided by ``2^k`` (exact)."""
    return ldexp(t.to(_F64), -k)


def _centred(t: Tensor) -> tuple[Tensor, int]:
    """``(c, k)``: a float64 copy of ``t`` divided by ``2^k`` (its largest magnitude brought to
    [1, 2)), then with its column means subtracted: ``t - mean(t) = 2^k c``. The first row is
    subtracted before the mean, so a constant column centres to exactly 0."""
    k = exponent(t)
    out = t.to(_F64, copy=True)  # one copy, scaled and centred in place
    for factor in pow2_factors(-k):
        out *= factor
    out -= out[:1].clone()
    out -= out.mean(dim=0, keepdim=True)
    return out, k


def _unit_rows(t: Tensor) -> Tensor:
    """Float64 rows scaled to unit L2 norm at any magnitude; zero rows stay zero (their cosine
    with anything is 0)."""
    return l2_rows(t.to(_F64))


def _column_mean(t: Tensor, k: int) -> Tensor:
    """Float64 column means of ``t / 2^k`` in one chunked pass (no float64 copy of ``t``),
    as ``t_0 + mean(t - t_0)``: exactly ``t_0`` for a constant column."""
    first = _f64(t[:1], k)
    total = torch.zeros(t.shape[1], dtype=_F64, device=t.device)
    for start, stop in _rows(t.shape[0], _block_rows(t.shape[1])):
        total += (_f64(t[start:stop], k) - first).sum(dim=0)
    return first[0] + total / t.shape[0]


def _sq_distances(sq_a: Tensor, sq_b: Tensor, gram: Tensor, dim: int) -> Tensor:
    """``||a_i - b_j||^2 = ||a_i||^2 + ||b_j||^2 - 2 <a_i, b_j>`` from the squared norms and
    the Gram block (BLAS speed). A value within the expansion's rounding, about
    ``(D + 2) eps (||a_i||^2 + ||b_j||^2)``, is set to exactly 0: coincident points are at
    distance 0 at every magnitude and on every CPU."""
    total = sq_a[:, None] + sq_b[None, :]
    sq = total - 2.0 * gram
    return sq.masked_fill_(sq <= 2.0 * (dim + 2) * _EPS * total, 0.0)


def _inner(a: Tensor, b: Tensor) -> Tensor:
    """Frobenius inner product ``<a, b>_F`` without an elementwise temporary."""
    return torch.dot(a.reshape(-1), b.reshape(-1))


def _sq(t: Tensor) -> Tensor:
    """Squared Frobenius norm."""
    return _inner(t, t)


# --------------------------------------------------------------------------------------------
# Linear CKA: three forms of one estimator.


def _hsic_u(tr_kl: Tensor, one_k: Tensor, one_l: Tensor, one_kl: Tensor, n: int) -> Tensor:
    """Song et al. (2012) unbiased HSIC from its four scalar terms (K~, L~ zero-diagonal)."""
    return (tr_kl + one_k * one_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * one_kl) / (n * (n - 3))


def _biased_ratio(cross: Tensor, self_x: Tensor, self_y: Tensor) -> float:
    """``<K, L> / (||K|| ||L||)`` from ``<K, L>``, ``||K||^2`` and ``||L||^2``."""
    for name, value in (("x", self_x), ("y", self_y)):
        if not bool(value > 0):
            raise ValueError(f"{name} has zero variance after centring; CKA is undefined for it")
    return float(cross / (self_x.sqrt() * self_y.sqrt()))


def _debiased_ratio(
    hxy: Tensor, hxx: Tensor, hyy: Tensor, scale_x: Tensor, scale_y: Tensor, n: int
) -> float:
    """``HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L))``; ``scale_*`` is ``||K||_F^2``."""
    for name, value, scale in (("x", hxx, scale_x), ("y", hyy, scale_y)):
        if not bool(value > _DEBIASED_ZERO * scale / (n * (n - 3))):
            raise ValueError(
                f"the debiased HSIC of {name} with itself is {float(value):.3g} (zero up to "
                f"rounding): {name} has (near-)zero variance or its samples are too symmetric "
                "(e.g. a regular simplex); debiased CKA is undefined for it"
            )
    return float(hxy / (hxx.sqrt() * hyy.sqrt()))


def _debiased_from_moments(
    cxy: Tensor, cxx: Tensor, cyy: Tensor, row_moments: Tensor, n: int
) -> float:
    """Debiased CKA of centred features from ``||X^T Y||_F^2``, ``||X^T X||_F^2``,
    ``||Y^T Y||_F^2`` and ``row_moments = [sum a, sum b, a.a, b.b, a.b]`` of the row norms
    ``a_i = ||x_i||^2``, ``b_i = ||y_i||^2`` (the diagonals of K and L)."""
    sa, sb, saa, sbb, sab = row_moments
    # Centred features: s_x = sum_i x_i = 0, so 1^T K~ 1 = -sum_i a_i and
    # 1^T K~ L~ 1 = sum_i (x_i.s_x - a_i)(y_i.s_y - b_i) = sum_i a_i b_i.
    hxy = _hsic_u(cxy - sab, -sa, -sb, sab, n)
    hxx = _hsic_u(cxx - saa, -sa, -sa, saa, n)
    hyy = _hsic_u(cyy - sbb, -sb, -sb, sbb, n)
    return _debiased_ratio(hxy, hxx, hyy, cxx, cyy, n)


def _row_moments(xc: Tensor, yc: Tensor) -> Tensor:
    a, b = xc.square().sum(dim=1), yc.square().sum(dim=1)
    return torch.stack([a.sum(), b.sum(), a @ a, b @ b, a @ b])


def _cka_feature(x: Tensor, y: Tensor, debiased: bool) -> float:
    (xc, _), (yc, _) = _centred(x), _centred(y)
    cxy, cxx, cyy = _sq(xc.T @ yc), _sq(xc.T @ xc), _sq(yc.T @ yc)
    if not debiased:
        return _biased_ratio(cxy, cxx, cyy)
    return _debiased_from_moments(cxy, cxx, cyy, _row_moments(xc, yc), xc.shape[0])


def _cka_gram(x: Tensor, y: Tensor, debiased: bool) -> float:
    (xc, _), (yc, _) = _centred(x), _centred(y)
    k, l_ = xc @ xc.T, yc @ yc.T  # already doubly centred: H K H = K for centred features
    if not debiased:
        return _biased_ratio(_inner(k, l_), _sq(k), _sq(l_))
    return _debiased_gram(k, l_)


def _debiased_gram(k: Tensor, l_: Tensor) -> float:
    """Debiased CKA of two N x N Gram matrices (their diagonals are zeroed in place)."""
    n = k.shape[0]
    scale_k, scale_l = _sq(k), _sq(l_)
    k.fill_diagonal_(0.0)
    l_.fill_diagonal_(0.0)
    k1, l1 = k.sum(dim=1), l_.sum(dim=1)
    one_k, one_l = k1.sum(), l1.sum()
    hxy = _hsic_u(_inner(k, l_), one_k, one_l, k1 @ l1, n)
    hxx = _hsic_u(_sq(k), one_k, one_k, k1 @ k1, n)
    hyy = _hsic_u(_sq(l_), one_l, one_l, l1 @ l1, n)
    return _debiased_ratio(hxy, hxx, hyy, scale_k, scale_l, n)


def _cka_streaming(x: Tensor, y: Tensor, debiased: bool, chunk_size: int | None) -> float:
    n, d1 = x.shape
    d2 = y.shape[1]
    chunk = chunk_size or _block_rows(d1 + d2)
    kx, ky = exponent(x), exponent(y)  # first pass: the magnitudes
    mx, my = _column_mean(x, kx), _column_mean(y, ky)  # second pass
    cxy = torch.zeros(d1, d2, dtype=_F64, device=x.device)
    cxx = torch.zeros(d1, d1, dtype=_F64, device=x.device)
    cyy = torch.zeros(d2, d2, dtype=_F64, device=x.device)
    moments = torch.zeros(5, dtype=_F64, device=x.device)
    for start, stop in _rows(n, chunk):  # third pass: centred float64 cross products
        xc = _f64(x[start:stop], kx) - mx
        yc = _f64(y[start:stop], ky) - my
        cxy += xc.T @ yc
        cxx += xc.T @ xc
        cyy += yc.T @ yc
        if debiased:
            moments += _row_moments(xc, yc)
    if not debiased:
        return _biased_ratio(_sq(cxy), _sq(cxx), _sq(cyy))
    return _debiased_from_moments(_sq(cxy), _sq(cxx), _sq(cyy), moments, n)


def _auto_cka_method(n: int, d1: int, d2: int) -> str:
    if 8 * n * (d1 + d2) > CKA_AUTO_MEMORY_BUDGET:
        return "streaming"
    feature_cost = d1 * d1 + d2 * d2 + d1 * d2  # per sample: X^T X, Y^T Y, X^T Y
    gram_cost = n * (d1 + d2)  # per sample: one row of K and of L
    if gram_cost < feature_cost and 16 * n * n <= CKA_AUTO_MEMORY_BUDGET:
        return "gram"
    return "feature"


def linear_cka(
    x: ArrayLike,
    y: ArrayLike,
    debiased: bool = False,
    method: str = "auto",
    chunk_size: int | None = None,
) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019).

    Features are centred first, ``Xc = X - 1 mean(X)``. With the linear Gram matrices
    ``K = Xc Xc^T`` and ``L = Yc Yc^T`` (already doubly centred),

        CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))
            = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F),

    in ``[0, 1]``, symmetric, and invariant to orthogonal maps, translations and isotropic
    scalings of either input (not to anisotropic scalings).

    ``debiased=True`` uses the unbiased HSIC estimator of Song et al. (2012), as in Kornblith
    et al. (2019) and Nguyen et al. (2021): with ``K~``, ``L~`` the Gram matrices with their
    diagonal zeroed,

        HSIC_u(K, L) = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2))
                        - 2 / (n-2) 1^T K~ L~ 1] / (n (n-3)),

    and ``CKA_u = HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L))`` in ``[-1, 1]`` (near 0 for
    independent inputs even when D >> N, where the biased estimate is inflated). It needs
    N >= 4. For linear kernels every term has a feature-space form, with ``a_i = ||x_i||^2``,
    ``b_i = ||y_i||^2`` and ``s_x = sum_i x_i``: ``tr(K~ L~) = ||X^T Y||_F^2 - sum_i a_i b_i``,
    ``1^T K~ 1 = ||s_x||^2 - sum_i a_i``, ``1^T K~ L~ 1 = sum_i (x_i.s_x - a_i)(y_i.s_y - b_i)``;
    the feature and streaming forms use them with ``s_x = s_y = 0`` (centred features), so they
    need only ``X^T Y``, ``X^T X``, ``Y^T Y`` and the moments of ``a`` and ``b``. (HSIC_u is
    unchanged by the centring: it removes the row/column-constant part of K.)

    Forms (``method``), all the same estimator:

    - ``"feature"``: D x D cross products; O(N (D1^2 + D2^2 + D1 D2)) time,
      O(N (D1 + D2) + D1^2 + D2^2 + D1 D2) memory.
    - ``"gram"``: the N x N Gram matrices; O(N^2 (D1 + D2)) time, O(N^2) memory.
    - ``"streaming"``: three passes over row chunks of ``chunk_size`` rows (default: 32 MiB of
      float64 per chunk) — the largest magnitude, the column means, then the centred cross
      products (and, debiased, the moments above) accumulated in float64;
      O(N (D1^2 + D2^2 + D1 D2)) time, O(D1 D2 + D1^2 + D2^2 + chunk (D1 + D2)) memory, no
      float64 copy of the inputs.
    - ``"auto"``: ``"streaming"`` when float64 copies of both inputs, 8 N (D1 + D2) bytes,
      exceed :data:`CKA_AUTO_MEMORY_BUDGET` (1 GiB); else ``"gram"`` when it is cheaper,
      N (D1 + D2) < D1^2 + D2^2 + D1 D2 (roughly D1 D2 > N^2 for D1 ~ D2 ~ D, i.e. D > N),
      and its two Gram matrices, 16 N^2 bytes, fit the budget; else ``"feature"``.

    Args:
        x: ``(N, D1)`` samples, numpy or torch, any floating dtype.
        y: ``(N, D2)`` the same samples in another space.
        debiased: use the unbiased HSIC estimator.
        method: ``"auto"``, ``"feature"``, ``"gram"`` or ``"streaming"``.
        chunk_size: rows per chunk of the streaming form (``"auto"`` uses it when it streams).

    Returns:
        The CKA as a float.

    Raises:
        ValueError: mismatched N, N < 2 (N < 4 debiased), zero variance (every row of ``x`` or
            ``y`` identical), NaN/Inf, unknown ``method``, ``chunk_size`` with a non-streaming
            ``method``.
        TypeError: non-floating input, non-bool ``debiased``.
    """
    debiased = check_bool(debiased, "debiased")
    check_choice(method, "method", _CKA_METHODS)
    chunk = _check_chunk_size(chunk_size)
    if chunk is not None and method in ("feature", "gram"):
        raise ValueError(
            f"chunk_size applies to method='streaming' (or 'auto'), got method={method!r}"
        )
    function = "debiased linear_cka" if debiased else "linear_cka"
    xt, yt = _paired(x, y, function=function, min_samples=4 if debiased else 2)
    _require_variance(xt, "x", "linear_cka")
    _require_variance(yt, "y", "linear_cka")
    if method == "auto":
        method = _auto_cka_method(xt.shape[0], xt.shape[1], yt.shape[1])
    if method == "feature":
        return _cka_feature(xt, yt, debiased)
    if method == "gram":
        return _cka_gram(xt, yt, debiased)
    return _cka_streaming(xt, yt, debiased, chunk)


# --------------------------------------------------------------------------------------------
# RBF CKA.


def _median(values: Tensor) -> Tensor:
    """Median with the mean of the two middle values for an even count (as numpy)."""
    m = values.numel()
    low = torch.kthvalue(values, (m + 1) // 2).values
    high = torch.kthvalue(values, m // 2 + 1).values
    return (low + high) / 2


def _rbf_gram(t: Tensor, sigma: float | None, name: str) -> Tensor:
    """The Gaussian kernel matrix minus the all-ones matrix, ``K - 1 1^T = expm1(-D / 2 s^2)``,
    divided by a power of two.

    Neither CKA form sees the difference: centring (biased) and the unbiased HSIC both remove
    a constant matrix, and CKA is invariant to scaling a kernel. ``expm1`` keeps the digits of
    a bandwidth far above the spread (``K ~ 1 - D / 2 s^2``), which ``exp`` rounds to 1.
    """
    xc, k = _centred(t)
    # Gram expansion of the centred data (in units of 2^k): BLAS speed; its rounding, ~eps
    # ||x||^2, the kernel cannot resolve anyway (and it is 0 for coincident points).
    sq_norms = xc.square().sum(dim=1)
    sq = _sq_distances(sq_norms, sq_norms, xc @ xc.T, xc.shape[1])
    sq.fill_diagonal_(0.0)
    if sigma is None:
        n = sq.shape[0]
        upper = torch.ones(n, n, dtype=torch.bool, device=sq.device).triu(diagonal=1)
        width = float(_median(sq[upper].sqrt()))
        if not width > 0:
            raise ValueError(
                f"the median pairwise distance of {name} is 0 (more than half of its samples "
                "coincide), so the median heuristic gives no bandwidth; pass sigma explicitly"
            )
    else:
        try:
            width = math.ldexp(sigma, -k)  # sigma in the units of the scaled data
        except OverflowError:
            width = math.inf
    if width == 0.0:  # sigma below every resolvable distance: K = I
        sq.masked_fill_(sq > 0, math.inf)
    else:
        sq.div_(width).div_(width).mul_(0.5)  # inf for distances far beyond sigma: K = 0
    kernel = sq.neg_().expm1_()
    if not bool((kernel != 0).any()):
        raise ValueError(
            f"the Gaussian kernel of {name} is constant to float64 precision: sigma={sigma!r} "
            f"is too large for the spread of {name} (its samples are all within the kernel's "
            "flat top); pass a smaller sigma or sigma=None"
        )
    return ldexp(kernel, -exponent(kernel))


def rbf_cka(
    x: ArrayLike,
    y: ArrayLike,
    sigma: float | None = None,
    debiased: bool = False,
) -> float:
    """CKA with Gaussian kernels ``k(u, v) = exp(-||u - v||^2 / (2 sigma^2))``.

    Gram form: ``K`` and ``L`` are the N x N kernel matrices of ``x`` and ``y``; biased,
    ``CKA = <H K H, H L H>_F / (||H K H||_F ||H L H||_F)`` with ``H = I - 1 1^T / N``;
    ``debiased=True`` uses the unbiased HSIC of :func:`linear_cka` on the same kernels.

    ``sigma=None`` applies the median heuristic in each space separately: sigma is the median of
    the off-diagonal pairwise euclidean distances ``||x_i - x_j||, i < j`` (the mean of the two
    middle values for an even count). Kornblith et al. (2019) set sigma to a fraction (0.2-0.8)
    of ``sqrt(median squared distance)``, with the zero diagonal included in their median; pass
    ``sigma`` explicitly to reproduce them. A float ``sigma`` is used for both spaces.

    Invariant to orthogonal maps and translations; also to isotropic scaling with the median
    heuristic (the bandwidth scales with the data), not with a fixed ``sigma`` (there
    ``rbf_cka(c x, c y, sigma=c s) = rbf_cka(x, y, sigma=s)``). The kernels are computed as
    ``K - 1 1^T = expm1(-||u - v||^2 / (2 sigma^2))``, which both CKA forms treat as ``K``
    (centring removes a constant matrix) and which keeps its digits for a ``sigma`` far above
    the spread of the data. O(N^2 (D1 + D2)) time, O(N^2) memory.

    Raises:
        ValueError: mismatched N, N < 2 (N < 4 debiased), NaN/Inf, zero variance, a median
            distance of 0, ``sigma`` not a positive finite number, or so large that a kernel
            is constant to float64 precision.
        TypeError: non-floating input, non-bool ``debiased``.
    """
    debiased = check_bool(debiased, "debiased")
    if sigma is not None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
            raise TypeError(f"sigma must be a positive float or None, got {type(sigma).__name__}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
        sigma = float(sigma)
    function = "debiased rbf_cka" if debiased else "rbf_cka"
    xt, yt = _paired(x, y, function=function, min_samples=4 if debiased else 2)
    _require_variance(xt, "x", "rbf_cka")
    _require_variance(yt, "y", "rbf_cka")
    k = _rbf_gram(xt, sigma, "x")
    l_ = _rbf_gram(yt, sigma, "y")
    if debiased:
        return _debiased_gram(k, l_)
    for gram in (k, l_):  # H K H in place: K symmetric, so row and column means coincide
        means = gram.mean(dim=0)
        gram -= means[None, :]
        gram -= means[:, None] - means.mean()
    return _biased_ratio(_inner(k, l_), _sq(k), _sq(l_))


# --------------------------------------------------------------------------------------------
# Procrustes and Bures.


def _nuclear_of_normalised(x: Tensor, y: Tensor) -> float:
    _require_variance(x, "x", "the Procrustes alignment")
    _require_variance(y, "y", "the Procrustes alignment")
    (xc, _), (yc, _) = _centred(x), _centred(y)
    xn = xc / torch.linalg.matrix_norm(xc)
    yn = yc / torch.linalg.matrix_norm(yc)
    # Zero-padding the narrower input changes none of the singular values of Xn^T Yn.
    with linalg_errors("the SVD of X^T Y (x and y centred and normalised)"):
        nuclear = float(torch.linalg.svdvals(xn.T @ yn).sum())
    return min(max(nuclear, 0.0), 1.0)


def bures_similarity(x: ArrayLike, y: ArrayLike) -> float:
    """Normalised Bures similarity ``NBS = ||X^T Y||_*`` in ``[0, 1]``.

    ``X`` and ``Y`` are the inputs centred (column means) and scaled to unit Frobenius norm;
    ``||.||_*`` is the nuclear norm (sum of singular values) of the ``D1 x D2`` matrix
    ``X^T Y`` — the narrower input is implicitly zero-padded, which leaves it unchanged. It
    equals ``max_Q tr(X^T Y Q)`` over orthogonal ``Q`` (reflections included), so
    ``procrustes_distance(x, y)^2 = 2 - 2 NBS`` and ``scipy.spatial.procrustes``'s disparity
    (same D) is ``1 - NBS^2``. Rounding is clamped to ``[0, 1]``.

    Invariant to orthogonal maps, translations and isotropic scalings of either input.
    O(N D1 D2 + D1 D2 min(D1, D2)) time, O(N (D1 + D2) + D1 D2) memory.

    Raises:
        ValueError: mismatched N, N < 2, NaN/Inf, zero variance.
        TypeError: non-floating input.
    """
    xt, yt = _paired(x, y, function="bures_similarity", min_samples=2)
    return _nuclear_of_normalised(xt, yt)


def procrustes_distance(x: ArrayLike, y: ArrayLike) -> float:
    """Orthogonal Procrustes distance of the normalised inputs.

    With ``X`` and ``Y`` centred, scaled to unit Frobenius norm and the narrower zero-padded to
    the wider dimension,

        d(X, Y) = min_{Q orthogonal} ||X - Y Q||_F = sqrt(max(0, 2 - 2 ||X^T Y||_*)),

    (``||.||_*`` the nuclear norm; see :func:`bures_similarity`), in ``[0, sqrt(2)]``. It is a
    metric on inputs modulo translation, isotropic scaling and orthogonal maps (reflections
    included): symmetric, zero exactly for such copies, and satisfying the triangle inequality.
    O(N D1 D2 + D1 D2 min(D1, D2)) time.

    Raises:
        ValueError: mismatched N, N < 2, NaN/Inf, zero variance.
        TypeError: non-floating input.
    """
    xt, yt = _paired(x, y, function="procrustes_distance", min_samples=2)
    return math.sqrt(max(0.0, 2.0 - 2.0 * _nuclear_of_normalised(xt, yt)))


# --------------------------------------------------------------------------------------------
# CCA and SVCCA.


def _orthonormal_basis(t: Tensor, name: str) -> Tensor:
    """Thin QR of the centred ``t``; refuses (numerically) rank-deficient columns."""
    with linalg_errors(f"the QR decomposition of the centred {name}"):
        q, r = torch.linalg.qr(t, mode="reduced")
    diag = torch.diagonal(r).abs()
    tol = diag.max() * max(t.shape) * _EPS
    if not bool((diag > tol).all()):
        raise ValueError(
            f"the centred columns of {name} are linearly dependent (rank "
            f"{int((diag > tol).sum())} < {t.shape[1]}); CCA needs full column rank — reduce "
            f"{name} first, e.g. with svcca's principal directions"
        )
    return q


def _cca(xr: Tensor, yr: Tensor) -> Tensor:
    qx = _orthonormal_basis(xr, "x")
    qy = _orthonormal_basis(yr, "y")
    with linalg_errors("the SVD of Qx^T Qy (the canonical correlations)"):
        return torch.linalg.svdvals(qx.T @ qy).clamp(0.0, 1.0)


def _check_cca_samples(n: int, dx: int, dy: int, hint: str) -> None:
    if n <= max(dx, dy) + 1:
        raise ValueError(
            f"CCA needs N > max(dims) + 1 samples, got N={n} with {dx} dims of x and {dy} dims "
            f"of y; {hint}"
        )


def canonical_correlations(x: ArrayLike, y: ArrayLike) -> Tensor:
    """Canonical correlations of ``x (N, D1)`` and ``y (N, D2)``, in decreasing order.

    With ``Qx``, ``Qy`` the thin-QR orthonormal bases of the centred inputs, the canonical
    correlations are the singular values of ``Qx^T Qy`` (the cosines of the principal angles
    between the two column spaces), ``min(D1, D2)`` of them in ``[0, 1]``. The first equals the
    largest correlation of ``x u`` and ``y v`` over all directions ``u``, ``v``. Requires full
    column rank after centring and N > max(D1, D2) + 1. O(N (D1^2 + D2^2 + D1 D2)) time.

    Returns:
        A float64 tensor of shape ``(min(D1, D2),)`` on the inputs' device.

    Raises:
        ValueError: mismatched N, too few samples, NaN/Inf, linearly dependent columns.
        TypeError: non-floating input.
    """
    xt, yt = _paired(x, y, function="canonical_correlations", min_samples=3)
    n, d1 = xt.shape
    _check_cca_samples(n, d1, yt.shape[1], "add samples or reduce the dimensions")
    return _cca(_centred(xt)[0], _centred(yt)[0])


def _principal_reduction(t: Tensor, variance: float, name: str) -> Tensor:
    """Centred data projected on its fewest leading principal directions explaining
    ``variance`` of the total, i.e. ``U_k S_k`` (in units of a power of two)."""
    xc, _ = _centred(t)
    with linalg_errors(f"the SVD of the centred {name}"):
        u, s, _ = torch.linalg.svd(xc, full_matrices=False)
    energy = torch.cumsum(s.square(), dim=0)
    target = energy.new_tensor([variance]) * energy[-1]
    kept = int(torch.searchsorted(energy, target)) + 1
    return u[:, :kept] * s[:kept]


def svcca(x: ArrayLike, y: ArrayLike, variance: float = 0.99) -> float:
    """Singular vector CCA (Raghu et al., 2017): mean canonical correlation of the principal
    subspaces.

    Per space: SVD of the centred data ``Xc = U S V^T``; keep the fewest ``k`` leading
    directions with ``sum_{j<=k} s_j^2 >= variance * sum_j s_j^2`` and project,
    ``X' = U_k S_k``. Then CCA between ``X'`` and ``Y'`` (:func:`canonical_correlations`: the
    singular values of ``Qx^T Qy`` from thin QR) and the mean of the ``min(kx, ky)`` canonical
    correlations, in ``[0, 1]``. The null space of rank-deficient data is never kept: its
    rounding-level singular values (~eps s_1) add ~eps^2 of the energy, below float64's
    resolution of the cumulative sum (except for inputs stored in half precision, whose
    rounding directions ``variance=1`` would keep: use ``variance < 1`` there).

    Invariant to invertible linear maps and translations of either input when the kept
    subspace is the whole span (``variance=1``); 1 when one kept span contains the other.
    CCA overfits as kx + ky approaches N (correlations are biased towards 1): use N well above
    the kept dimensions. O(N D (D1 + D2) + N (kx^2 + ky^2)) time, D the smaller of N and D.

    Raises:
        ValueError: ``variance`` outside (0, 1], N <= max(kx, ky) + 1, mismatched N, NaN/Inf,
            zero variance.
        TypeError: non-floating input, non-numeric ``variance``.
    """
    if isinstance(variance, bool) or not isinstance(variance, (int, float)):
        raise TypeError(f"variance must be a float in (0, 1], got {type(variance).__name__}")
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance must be in (0, 1], got {variance!r}")
    xt, yt = _paired(x, y, function="svcca", min_samples=3)
    _require_variance(xt, "x", "svcca")
    _require_variance(yt, "y", "svcca")
    xr = _principal_reduction(xt, float(variance), "x")
    yr = _principal_reduction(yt, float(variance), "y")
    _check_cca_samples(
        xt.shape[0],
        xr.shape[1],
        yr.shape[1],
        f"lower variance (now {variance}) to keep fewer dims, or add samples",
    )
    return float(_cca(xr, yr).mean())


# --------------------------------------------------------------------------------------------
# Neighbourhoods.


def _prepare_rows(t: Tensor, mean: Tensor | None, k: int) -> Tensor:
    """Float64 rows ready for the scores: divided by ``2^k`` and centred (euclidean, ``mean``
    given), or unit (cosine)."""
    return _unit_rows(t) if mean is None else _f64(t, k) - mean


def _neighbour_scores(t: Tensor, start: int, stop: int, mean: Tensor | None, k: int) -> Tensor:
    """``(stop - start, N)`` scores (higher = nearer) of rows ``start:stop`` against all rows:
    cosine similarity (``mean`` None), or minus the squared euclidean distance of the data
    divided by ``2^k`` and centred by ``mean`` (centring first keeps the digits of the
    expansion; the power of two changes no order)."""
    n, d = t.shape
    queries = _prepare_rows(t[start:stop], mean, k)
    out = torch.empty(stop - start, n, dtype=_F64, device=t.device)
    sq_q = queries.square().sum(dim=1, keepdim=True)
    for lo, hi in _rows(n, _block_rows(d)):
        keys = _prepare_rows(t[lo:hi], mean, k)
        block = queries @ keys.T
        if mean is not None:  # -||q - k||^2 of centred rows
            block = 2.0 * block - sq_q - keys.square().sum(dim=1)
        out[:, lo:hi] = block
    return out


def _knn_mask(scores: Tensor, start: int, k: int) -> Tensor:
    """Boolean mask of each row's k best scores, self (column start + row) excluded and ties
    at the k-th score broken towards the lower column index."""
    rows = torch.arange(scores.shape[0], device=scores.device)
    scores[rows, start + rows] = -math.inf
    kth = torch.topk(scores, k, dim=1).values[:, -1:]
    above = scores > kth
    tied = scores == kth
    missing = k - above.sum(dim=1, keepdim=True)
    return above | (tied & (torch.cumsum(tied, dim=1) <= missing))


def _knn_intersections(x: Tensor, y: Tensor, k: int, metric: str, chunk_size: int | None) -> Tensor:
    n = x.shape[0]
    euclidean = metric == "euclidean"
    kx, ky = (exponent(x), exponent(y)) if euclidean else (0, 0)
    mean_x = _column_mean(x, kx) if euclidean else None
    mean_y = _column_mean(y, ky) if euclidean else None
    chunk = chunk_size or _block_rows(n)
    inter = torch.empty(n, dtype=_F64, device=x.device)
    for start, stop in _rows(n, chunk):
        mask_x = _knn_mask(_neighbour_scores(x, start, stop, mean_x, kx), start, k)
        mask_y = _knn_mask(_neighbour_scores(y, start, stop, mean_y, ky), start, k)
        inter[start:stop] = (mask_x & mask_y).sum(dim=1)
    return inter


def _knn_inputs(
    x: ArrayLike, y: ArrayLike, k: int, metric: str, chunk_size: int | None, function: str
) -> tuple[Tensor, Tensor, int | None]:
    check_choice(metric, "metric", _KNN_METRICS)
    chunk = _check_chunk_size(chunk_size)
    k = check_int(k, "k")
    xt, yt = _paired(x, y, function=function, min_samples=2)
    n = xt.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be in [1, N-1] = [1, {n - 1}] (self excluded), got k={k}")
    return xt, yt, chunk


def jaccard_knn(
    x: ArrayLike,
    y: ArrayLike,
    k: int = 10,
    metric: str = "cosine",
    chunk_size: int | None = None,
) -> float:
    """Mean Jaccard index of the k-nearest-neighbour sets in the two spaces.

    ``A_i`` (``B_i``) is the set of the ``k`` samples nearest to sample ``i`` in ``x`` (``y``),
    ``i`` itself excluded, under ``metric``: ``"cosine"`` (largest cosine similarity; a zero
    vector has cosine 0 with everything) or ``"euclidean"``. Ties at the k-th place are broken
    towards the lower sample index, so equal inputs give equal sets. Returns
    ``mean_i |A_i ∩ B_i| / |A_i ∪ B_i|`` in ``[0, 1]``; about ``k / (2N)`` for independent
    spaces. Invariant to orthogonal maps (cosine: also isotropic scaling; euclidean: also
    translation and isotropic scaling) of either input.

    Computed over row chunks (``chunk_size`` rows, default: a 32 MiB float64 score block):
    O(N^2 (D1 + D2)) time, O(chunk N) memory.

    Raises:
        ValueError: k outside [1, N-1], unknown ``metric``, mismatched N, N < 2, NaN/Inf.
        TypeError: non-floating input, non-int ``k``.
    """
    xt, yt, chunk = _knn_inputs(x, y, k, metric, chunk_size, "jaccard_knn")
    inter = _knn_intersections(xt, yt, k, metric, chunk)
    return float((inter / (2 * k - inter)).mean())


def mutual_knn(
    x: ArrayLike,
    y: ArrayLike,
    k: int = 10,
    metric: str = "cosine",
    chunk_size: int | None = None,
) -> float:
    """Mean fraction of shared k-nearest neighbours: ``mean_i |A_i ∩ B_i| / k``.

    ``A_i``, ``B_i``, ties, invariances and cost as in :func:`jaccard_knn`; about ``k / (N-1)``
    for independent spaces, 1 for spaces with the same neighbourhoods.

    Raises:
        ValueError: k outside [1, N-1], unknown ``metric``, mismatched N, N < 2, NaN/Inf.
        TypeError: non-floating input, non-int ``k``.
    """
    xt, yt, chunk = _knn_inputs(x, y, k, metric, chunk_size, "mutual_knn")
    return float(_knn_intersections(xt, yt, k, metric, chunk).mean() / k)


# --------------------------------------------------------------------------------------------
# Shared-space measures.


@dataclass(frozen=True)
class RetrievalScores:
    """Cross-space retrieval of the true partner: mean reciprocal rank, top-1 and top-5
    accuracy (fractions in [0, 1])."""

    mrr: float
    top1: float
    top5: float


def retrieval(x: ArrayLike, y: ArrayLike, chunk_size: int | None = None) -> RetrievalScores:
    """Retrieve ``y_i`` among all ``y_j`` with the query ``x_i`` (a shared space, same D).

    Scores are cosine similarities ``s_ij = cos(x_i, y_j)`` (0 for a zero vector). The rank of
    the true partner is pessimistic on ties,

        rank_i = 1 + #{j != i : s_ij >= s_ii - tau},   tau = 2 (D + 2) eps_64,

    where ``tau`` bounds the float64 rounding of a length-D cosine, so scores equal up to
    rounding count as ties: constant or duplicated embeddings do not score perfectly (constant
    ``y`` gives rank N for every query). Returns ``mrr = mean 1/rank_i``,
    ``top1 = mean [rank_i = 1]``, ``top5 = mean [rank_i <= 5]``.

    Computed in ``chunk_size x chunk_size`` blocks (default 2048): O(N^2 D) time,
    O(chunk^2 + chunk D) float64 working memory besides the inputs — the N x N similarity
    matrix is never formed (N = 100,000, D = 768: about 215 MiB measured).

    Raises:
        ValueError: different D, mismatched N, N < 2, NaN/Inf.
        TypeError: non-floating input.
    """
    chunk = _check_chunk_size(chunk_size) or 2048
    xt, yt = _paired(x, y, function="retrieval", min_samples=2, same_dim=True)
    n, d = xt.shape
    tau = 2.0 * (d + 2) * _EPS
    ranks = torch.empty(n, dtype=_F64, device=xt.device)
    for start, stop in _rows(n, chunk):
        queries = _unit_rows(xt[start:stop])
        own = (queries * _unit_rows(yt[start:stop])).sum(dim=1, keepdim=True)
        beaten = torch.zeros(stop - start, dtype=torch.long, device=xt.device)
        for lo, hi in _rows(n, chunk):
            hits = queries @ _unit_rows(yt[lo:hi]).T >= own - tau
            if lo == start:  # the diagonal block: j = i is not a competitor
                hits.diagonal().fill_(False)
            beaten += hits.sum(dim=1)
        ranks[start:stop] = 1 + beaten
    return RetrievalScores(
        mrr=float(ranks.reciprocal().mean()),
        top1=float((ranks <= 1).double().mean()),
        top5=float((ranks <= 5).double().mean()),
    )


def mean_cosine(x: ArrayLike, y: ArrayLike) -> float:
    """Mean cosine similarity of the pairs, ``mean_i <x_i, y_i> / (||x_i|| ||y_i||)``, in
    [-1, 1]; a pair with a zero vector has cosine 0. Same D required. O(N D) time, computed in
    row chunks.

    Raises:
        ValueError: different D, mismatched N, N < 1, NaN/Inf.
        TypeError: non-floating input.
    """
    xt, yt = _paired(x, y, function="mean_cosine", min_samples=1, same_dim=True)
    total = torch.zeros((), dtype=_F64, device=xt.device)
    for start, stop in _rows(xt.shape[0], _block_rows(2 * xt.shape[1])):
        cos = (_unit_rows(xt[start:stop]) * _unit_rows(yt[start:stop])).sum(dim=1)
        total += cos.sum()
    return float(total / xt.shape[0])


# --------------------------------------------------------------------------------------------
# Correlation of pairwise distances.


def _condensed_distances(t: Tensor, metric: str) -> Tensor:
    """Pairwise distances ``d(t_i, t_j)`` for ``i < j`` in row-major order (scipy's pdist)."""
    n = t.shape[0]
    if metric == "euclidean":
        k = exponent(t)  # distances in units of 2^k: the correlation is scale-invariant
        data = _f64(t, k) - _column_mean(t, k)
        sq_norms = data.square().sum(dim=1)
    else:
        data = _unit_rows(t)
    parts = []
    for start, stop in _rows(n, _block_rows(max(n, t.shape[1]))):
        rows, later_rows = data[start:stop], data[start:]  # only j >= start is needed
        gram = rows @ later_rows.T
        if metric == "euclidean":
            block = _sq_distances(sq_norms[start:stop], sq_norms[start:], gram, t.shape[1]).sqrt()
        else:
            block = 1.0 - gram
        cols = torch.arange(start, n, device=t.device)
        later = cols[None, :] > torch.arange(start, stop, device=t.device)[:, None]
        parts.append(block[later])
    return torch.cat(parts)


def _average_ranks(values: Tensor) -> Tensor:
    """1-based ranks with ties given the mean of their positions (scipy.stats.rankdata)."""
    ordered, order = torch.sort(values, stable=True)
    m = values.numel()
    starts = torch.ones(m, dtype=torch.bool, device=values.device)
    starts[1:] = ordered[1:] != ordered[:-1]
    group = torch.cumsum(starts, dim=0) - 1
    first = torch.nonzero(starts).squeeze(1).to(_F64)
    size = torch.bincount(group).to(_F64)
    ranks = torch.empty(m, dtype=_F64, device=values.device)
    ranks[order] = (first + (size + 1) / 2)[group]
    return ranks


def distance_correlation(
    x: ArrayLike,
    y: ArrayLike,
    method: str = "pearson",
    metric: str = "euclidean",
) -> float:
    """Correlation of the pairwise distances of the samples in the two spaces.

    ``d_x`` and ``d_y`` are the condensed vectors of the ``N (N - 1) / 2`` distances
    ``d(z_i, z_j), i < j`` (as ``scipy.spatial.distance.pdist``) under ``metric``:
    ``"euclidean"`` or ``"cosine"`` (``1 - cos``, a zero vector having cosine 0). Returns the
    Pearson correlation of ``d_x`` and ``d_y`` (``method="pearson"``) or the Spearman
    correlation, the Pearson correlation of their ranks with tied values given their average
    rank (``method="spearman"``; ties are exactly equal computed distances). Euclidean
    distances use the Gram expansion ``||u||^2 + ||v||^2 - 2 <u, v>`` of the centred data
    (BLAS speed; absolute rounding ~eps times the squared data scale, and a squared distance
    within that rounding of 0 is 0, so coincident points tie exactly). This is the paper's
    "correlation of distances" across training seeds (its Figure 3). 1 for isometric copies;
    invariant to orthogonal maps (euclidean: also translation) and isotropic scaling.

    O(N^2 (D1 + D2)) time and O(N^2) memory: N is limited to
    :data:`DISTANCE_CORRELATION_MAX_N` (10,000, i.e. ~5e7 distances per input, about 0.8 GB
    for Pearson and a few GB for Spearman); subsample rows (the same indices in ``x`` and
    ``y``) beyond it.

    Raises:
        ValueError: unknown ``method`` or ``metric``, N < 3 or N > the limit, mismatched N,
            NaN/Inf, all distances of ``x`` or ``y`` equal.
        TypeError: non-floating input.
    """
    check_choice(method, "method", _CORRELATIONS)
    check_choice(metric, "metric", _DISTANCES)
    xt, yt = _paired(x, y, function="distance_correlation", min_samples=3)
    n = xt.shape[0]
    if n > DISTANCE_CORRELATION_MAX_N:
        raise ValueError(
            f"distance_correlation holds all N (N - 1) / 2 pairwise distances; N={n} exceeds "
            f"the limit {DISTANCE_CORRELATION_MAX_N}: subsample the rows, e.g. "
            "idx = rng.choice(N, 5000, replace=False) and pass x[idx], y[idx]"
        )
    vectors = []
    for name, t in (("x", xt), ("y", yt)):
        _require_variance(t, name, "distance_correlation")
        dist = _condensed_distances(t, metric)
        # Cosine distances carry rounding of about D eps: a spread below it is no spread.
        floor = 2.0 * (t.shape[1] + 2) * _EPS if metric == "cosine" else 0.0
        if not bool(dist.max() - dist.min() > floor):
            raise ValueError(
                f"all pairwise {metric} distances of {name} are equal, so their correlation is "
                "undefined"
            )
        if method == "spearman":
            dist = _average_ranks(dist)
        vectors.append(dist - dist.mean())
    dx, dy = vectors
    r = (dx @ dy) / (torch.linalg.vector_norm(dx) * torch.linalg.vector_norm(dy))
    return float(r.clamp(-1.0, 1.0))
