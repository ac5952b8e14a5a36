"""Numerics of latentbridge.metrics: any magnitude, any floating dtype, degenerate input.

Every measure is invariant to a positive scaling of either input (the cosine-based ones even
to scaling each row), so the value at scale ``c`` is compared with the value at scale 1:

- ``c`` a power of two: *bit for bit* (the measures divide by powers of two, which is exact);
- ``c`` a power of ten from 1e-300 to 1e300: to ``DECIMAL_ATOL`` (``c x`` itself is rounded,
  a relative 1e-16 per entry, which well-conditioned data turns into ~1e-15 of the value);
- float32 / float16 / bfloat16 inputs: computed in float64, so bit for bit equal to their
  exact float64 cast, and close to the float64 value at scale 1 (``LOW_PRECISION_ATOL``: the
  inputs' own rounding, 2^-24 / 2^-11 / 2^-8 relative, moves a well-conditioned value by about
  as much).

Negative controls show that these comparisons can fail: a measure that is not scale-invariant
(``rbf_cka`` with a fixed ``sigma``), a one-entry perturbation, and the textbook formula that
overflows at 1e200.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from latentbridge import metrics
from latentbridge.metrics import (
    RetrievalScores,
    bures_similarity,
    canonical_correlations,
    distance_correlation,
    jaccard_knn,
    linear_cka,
    mean_cosine,
    mutual_knn,
    procrustes_distance,
    rbf_cka,
    retrieval,
    svcca,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


EXAMPLES = settings(max_examples=max(25, settings().max_examples), deadline=None)
DECIMAL_ATOL = 1e-9
LOW_PRECISION_ATOL = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}


@dataclass(frozen=True)
class Measure:
    fn: Callable[[Any, Any], Any]
    low: float  # the documented range of every value
    high: float
    same_dim: bool = False  # x and y in one shared space
    translation: bool = True  # invariant to translating either input
    discrete: bool = False  # a small rounding of the input may change the value by a step


def _knn(fn: Callable[..., float], metric: str) -> Callable[[Any, Any], float]:
    return lambda x, y: fn(x, y, k=3, metric=metric)


MEASURES: dict[str, Measure] = {
    **{
        f"linear_cka[{m}]": Measure(lambda x, y, m=m: linear_cka(x, y, method=m), 0, 1)
        for m in ("feature", "gram")
    },
    "linear_cka[streaming]": Measure(
        lambda x, y: linear_cka(x, y, method="streaming", chunk_size=5), 0, 1
    ),
    **{
        f"debiased linear_cka[{m}]": Measure(
            lambda x, y, m=m: linear_cka(x, y, debiased=True, method=m), -1, 1
        )
        for m in ("feature", "gram", "streaming")
    },
    "rbf_cka": Measure(rbf_cka, 0, 1),
    "debiased rbf_cka": Measure(lambda x, y: rbf_cka(x, y, debiased=True), -1, 1),
    "procrustes_distance": Measure(procrustes_distance, 0, math.sqrt(2)),
    "bures_similarity": Measure(bures_similarity, 0, 1),
    # The kept dimensions are a threshold on the spectrum: a rounding can move one across.
    "svcca": Measure(svcca, 0, 1, discrete=True),
    "svcca[variance=1]": Measure(lambda x, y: svcca(x, y, variance=1.0), 0, 1),
    "canonical_correlations": Measure(canonical_correlations, 0, 1),
    "jaccard_knn[cosine]": Measure(_knn(jaccard_knn, "cosine"), 0, 1, False, False, True),
    "jaccard_knn[euclidean]": Measure(_knn(jaccard_knn, "euclidean"), 0, 1, discrete=True),
    "mutual_knn[cosine]": Measure(_knn(mutual_knn, "cosine"), 0, 1, False, False, True),
    "mutual_knn[euclidean]": Measure(_knn(mutual_knn, "euclidean"), 0, 1, discrete=True),
    "retrieval": Measure(
        lambda x, y: retrieval(x, y, chunk_size=7), 0, 1, True, False, discrete=True
    ),
    "mean_cosine": Measure(mean_cosine, -1, 1, True, False),
    **{
        f"distance_correlation[{method},{metric}]": Measure(
            lambda x, y, a=method, b=metric: distance_correlation(x, y, a, b),
            -1,
            1,
            translation=metric == "euclidean",
            discrete=method == "spearman",  # ranks: ties appear in low precision
        )
        for method in ("pearson", "spearman")
        for metric in ("euclidean", "cosine")
    },
}
NAMES = list(MEASURES)


def _value(name: str, x: Any, y: Any) -> np.ndarray:
    """The measure's value(s) as a float64 array (retrieval: its three scores)."""
    out = MEASURES[name].fn(x, y)
    if isinstance(out, RetrievalScores):
        return np.array(astuple(out))
    if isinstance(out, torch.Tensor):
        return out.numpy()
    return np.array([out])


def _pair(name: str, n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A generic related pair: y a noisy non-linear function of x (same D if required)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)) + np.array([0.5, -1.0, 2.0, 0.0])
    if MEASURES[name].same_dim:
        return x, x + 0.7 * rng.standard_normal((n, 4))
    return x, np.tanh(x @ rng.standard_normal((4, 3))) + 0.3 * rng.standard_normal((n, 3))


def _orthogonal(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# --------------------------------------------------------------------------- scale invariance


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(kx=st.integers(-1000, 1000), ky=st.integers(-1000, 1000))
def test_power_of_two_scaling_changes_no_bit(name: str, kx: int, ky: int) -> None:
    x, y = _pair(name)
    xs, ys = x * 2.0**kx, y * 2.0**ky  # exact: every entry stays a normal float64
    before = (xs.copy(), ys.copy())
    np.testing.assert_array_equal(_value(name, xs, ys), _value(name, x, y))
    # the inputs are never written to
    np.testing.assert_array_equal(xs, before[0])
    np.testing.assert_array_equal(ys, before[1])


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(ex=st.integers(-300, 300), ey=st.integers(-300, 300))
def test_decimal_scaling_from_1e_minus_300_to_1e300(name: str, ex: int, ey: int) -> None:
    x, y = _pair(name)
    value = _value(name, x * 10.0**ex, torch.from_numpy(y * 10.0**ey))
    assert np.isfinite(value).all()
    np.testing.assert_allclose(value, _value(name, x, y), rtol=0, atol=DECIMAL_ATOL)


LOW = {
    torch.float32: st.integers(-30, 30).map(lambda e: 10.0**e),  # up to ~4e30 < 3.4e38
    torch.float16: st.integers(-14, 13).map(lambda e: 2.0**e),  # up to ~3e4 < 65504
    torch.bfloat16: st.integers(-30, 30).map(lambda e: 10.0**e),  # float32's exponent range
}


@pytest.mark.parametrize("dtype", list(LOW), ids=str)
@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(data=st.data())
def test_low_precision_inputs_are_computed_in_float64(
    name: str, dtype: torch.dtype, data: st.DataObject
) -> None:
    x, y = _pair(name)
    c = data.draw(LOW[dtype], label="scale")
    xl, yl = torch.from_numpy(c * x).to(dtype), torch.from_numpy(c * y).to(dtype)
    value = _value(name, xl, yl)
    # the exact float64 cast gives the same bits: nothing is computed in low precision
    np.testing.assert_array_equal(value, _value(name, xl.double(), yl.double()))
    if not MEASURES[name].discrete:  # (a discrete measure may step on the inputs' rounding)
        np.testing.assert_allclose(value, _value(name, x, y), atol=LOW_PRECISION_ATOL[dtype])


# --------------------------------------------------------------------------- closed forms

EXTREME = [
    (1e-300, 1e-300),
    (1e300, 1e300),
    (1e-300, 1e300),
    (2.0**-1000, 2.0**1000),
    (np.finfo(np.float64).max / 64, 1.0),  # the largest entry near 1.8e308 / 16
]


@pytest.mark.parametrize(("cx", "cy"), EXTREME)
def test_closed_forms_at_extreme_scales(cx: float, cy: float) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 4))
    q = _orthogonal(4, 2)
    a = rng.standard_normal((4, 4)) + 3.0 * np.eye(4)
    t = rng.standard_normal(4)
    xs, copy = cx * x, cy * (x @ q + t)  # a rotated, translated, scaled copy
    for method in ("feature", "gram", "streaming"):
        for debiased in (False, True):
            got = linear_cka(xs, copy, debiased=debiased, method=method)
            assert got == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(xs, copy) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(xs, copy, debiased=True) == pytest.approx(1.0, abs=1e-12)
    assert procrustes_distance(xs, copy) == pytest.approx(0.0, abs=1e-6)
    assert bures_similarity(xs, copy) == pytest.approx(1.0, abs=1e-12)
    assert svcca(xs, cy * (x @ a + t), variance=1.0) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(canonical_correlations(xs, cy * (x @ a)), 1.0, atol=1e-12)
    rotated = cy * (x @ q)
    for metric in ("cosine", "euclidean"):
        assert jaccard_knn(xs, rotated, k=5, metric=metric) == 1.0
        target = copy if metric == "euclidean" else rotated
        assert mutual_knn(xs, target, k=5, metric=metric) == 1.0
        for method in ("pearson", "spearman"):
            got = distance_correlation(xs, target, method=method, metric=metric)
            assert got == pytest.approx(1.0, abs=1e-12)
    assert retrieval(xs, cy * x) == RetrievalScores(mrr=1.0, top1=1.0, top5=1.0)
    assert mean_cosine(xs, -cy * x) == pytest.approx(-1.0, abs=1e-14)


def test_identical_subnormal_inputs() -> None:
    # Entries of about 1e-320 keep only ~10 bits, but identical inputs are still identical.
    x = np.random.default_rng(3).standard_normal((20, 3)) * 2.0**-1062
    assert np.all(np.abs(x[x != 0]) < np.finfo(np.float64).tiny)  # really subnormal
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x, debiased=True) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert procrustes_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert mutual_knn(x, x, k=4, metric="euclidean") == 1.0
    assert retrieval(x, x).mrr == 1.0
    assert mean_cosine(x, x) == pytest.approx(1.0, abs=1e-14)
    assert distance_correlation(x, x) == pytest.approx(1.0, abs=1e-12)


def test_rbf_cka_with_a_fixed_sigma_scales_with_the_data() -> None:
    # Not invariant (negative control for the comparisons above), but equivariant:
    # rbf_cka(c x, c y, sigma=c s) = rbf_cka(x, y, sigma=s).
    x, y = _pair("rbf_cka")
    reference = rbf_cka(x, y, sigma=1.5)
    assert abs(rbf_cka(10.0 * x, y, sigma=1.5) - reference) > 1e-3
    assert abs(rbf_cka(x, 10.0 * y, sigma=1.5) - reference) > 1e-3
    for k in (-1000, -3, 7, 1000):
        assert rbf_cka(x * 2.0**k, y * 2.0**k, sigma=1.5 * 2.0**k) == reference
    for e in (-300, -100, 150, 300):
        c = 10.0**e
        assert rbf_cka(c * x, c * y, sigma=1.5 * c) == pytest.approx(reference, abs=DECIMAL_ATOL)


def test_rbf_cka_bandwidth_limits() -> None:
    x, y = _pair("rbf_cka")
    # sigma far above the spread: K = 1 - D / (2 sigma^2) + O(sigma^-4), so CKA tends to the
    # linear CKA of the centred squared-distance matrices (exp alone would round K to 1).
    h = np.eye(len(x)) - 1.0 / len(x)
    dx, dy = h @ cdist(x, x, "sqeuclidean") @ h, h @ cdist(y, y, "sqeuclidean") @ h
    limit = float((dx * dy).sum() / np.sqrt((dx * dx).sum() * (dy * dy).sum()))
    for sigma in (1e20, 1e100, 1e150):
        assert rbf_cka(x, y, sigma=sigma) == pytest.approx(limit, abs=1e-12)
    assert abs(rbf_cka(x, y, sigma=3.0) - limit) > 1e-3  # a finite sigma is not the limit
    # sigma below every distance: K = I in both spaces, CKA = <H, H> / ||H||^2 = 1.
    for sigma in (1e-100, 1e-300, 5e-324):
        assert rbf_cka(x, y, sigma=sigma) == pytest.approx(1.0, abs=1e-12)
    # so large that the kernel is constant in float64: undefined, and said so
    with pytest.raises(ValueError, match=r"kernel of x is constant.*sigma=1e\+300"):
        rbf_cka(x, y, sigma=1e300)


def test_the_textbook_formula_overflows_where_the_measures_do_not() -> None:
    # Negative control for the scales used here: unscaled float64 CKA is NaN at 1e200.
    x, y = _pair("linear_cka[feature]")
    xs, ys = 1e200 * (x - x.mean(0)), 1e200 * (y - y.mean(0))
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.linalg.norm(xs.T @ ys) ** 2 / (
            np.linalg.norm(xs.T @ xs) * np.linalg.norm(ys.T @ ys)
        )
    assert not np.isfinite(naive)
    assert linear_cka(1e200 * x, 1e200 * y) == pytest.approx(linear_cka(x, y), abs=1e-12)


@pytest.mark.parametrize("name", [n for n in NAMES if not MEASURES[n].discrete])
def test_exact_comparison_sees_a_one_entry_change(name: str) -> None:
    # Negative control for the bit-for-bit comparison: it is not vacuous.
    x, y = _pair(name)
    moved = x.copy()
    moved[3, 1] *= 1.0 + 1e-9
    assert not np.array_equal(_value(name, moved, y), _value(name, x, y))


# --------------------------------------------------------------------------- degenerate input


def _names(message: str, argument: str) -> bool:
    return re.search(rf"\b{argument}\b", message) is not None


def _finite_or_clear_error(name: str, x: Any, y: Any, bad: tuple[str, ...]) -> np.ndarray | None:
    """The value (finite, in the measure's range), or None after a ValueError/TypeError that
    names one of the arguments in ``bad``."""
    measure = MEASURES[name]
    try:
        value = _value(name, x, y)
    except (ValueError, TypeError) as error:
        assert any(_names(str(error), a) for a in bad), (name, str(error))
        return None
    assert np.isfinite(value).all(), (name, value)
    assert (value >= measure.low - 1e-12).all() and (value <= measure.high + 1e-12).all()
    return value


def _degenerate(kind: str, x: np.ndarray) -> np.ndarray:
    n, d = x.shape
    if kind == "constant rows":
        return np.broadcast_to(x[:1], x.shape).copy()
    if kind == "zeros":
        return np.zeros_like(x)
    if kind == "constant column":
        out = x.copy()
        out[:, 1] = 2.5
        return out
    if kind == "rank one":
        return np.outer(x[:, 0], np.linspace(1.0, 2.0, d))
    if kind == "duplicated rows":
        return np.repeat(x[: n // 2], 2, axis=0)[:n]
    if kind == "one nonzero row":
        out = np.zeros_like(x)
        out[0] = x[0]
        return out
    raise AssertionError(kind)


DEGENERATE = [
    "constant rows",
    "zeros",
    "constant column",
    "rank one",
    "duplicated rows",
    "one nonzero row",
]


@pytest.mark.parametrize("name", NAMES)
@EXAMPLES
@given(
    kind=st.sampled_from(DEGENERATE),
    which=st.sampled_from(["x", "y"]),
    exponent=st.integers(-300, 300),
)
def test_degenerate_data_gives_a_value_or_a_clear_error(
    name: str, kind: str, which: str, exponent: int
) -> None:
    x, y = _pair(name)
    c = 10.0**exponent
    if which == "x":
        x = _degenerate(kind, x)
    else:
        y = _degenerate(kind, y)
    value = _finite_or_clear_error(name, c * x, c * y, (which,))
    unscaled = _finite_or_clear_error(name, x, y, (which,))
    assert (value is None) == (unscaled is None)  # the same verdict at every magnitude
    if value is not None and unscaled is not None and not MEASURES[name].discrete:
        np.testing.assert_allclose(value, unscaled, atol=DECIMAL_ATOL)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if MEASURES[n].translation and not n.startswith("canonical")]
)
@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e300])
def test_a_constant_column_changes_nothing(name: str, scale: float) -> None:
    # Translation-invariant measures centre the data: a constant feature is invisible.
    # (canonical_correlations refuses it instead: the centred column is zero, rank-deficient.)
    x, y = _pair(name)
    widened = np.concatenate([x, np.full((len(x), 1), 3.0)], axis=1)
    np.testing.assert_allclose(
        _value(name, scale * widened, scale * y), _value(name, x, y), atol=DECIMAL_ATOL
    )


def test_canonical_correlations_refuse_a_constant_column_naming_it() -> None:
    x, y = _pair("canonical_correlations")
    x[:, 2] = 1e300
    with pytest.raises(ValueError, match=r"columns of x are linearly dependent"):
        canonical_correlations(x, y)


def _bad_inputs(x: np.ndarray) -> list[tuple[str, Any, type[Exception]]]:
    nan, inf = x.copy(), x.copy()
    nan[2, 1] = np.nan
    inf[0, 0] = -np.inf
    return [
        ("NaN", nan, ValueError),
        ("-Inf", inf, ValueError),
        ("float16 overflow", torch.from_numpy(x * 1e5).half(), ValueError),  # inf in float16
        ("N=0", x[:0], ValueError),
        ("D=0", x[:, :0], ValueError),
        ("1-D", x[:, 0], ValueError),
        ("3-D", x[None], ValueError),
        ("int64", x.astype(np.int64), TypeError),
        ("bool", x > 0, TypeError),
        ("complex", x.astype(np.complex128), TypeError),
        ("torch complex", torch.from_numpy(x).to(torch.complex64), TypeError),
        ("torch int", torch.from_numpy(x).long(), TypeError),
        ("object", x.astype(object), TypeError),
        ("list", x.tolist(), TypeError),
        ("None", None, TypeError),
    ]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("which", ["x", "y"])
def test_invalid_input_is_a_clear_error_naming_the_argument(name: str, which: str) -> None:
    x, y = _pair(name)
    for label, bad, error in _bad_inputs(x if which == "x" else y):
        args = (bad, y) if which == "x" else (x, bad)
        with pytest.raises(error) as info:
            MEASURES[name].fn(*args)
        # N=0 is the pair's sample count: the message names x and y together
        assert _names(str(info.value), which), (label, str(info.value))


@pytest.mark.parametrize("name", NAMES)
def test_one_sample_is_a_value_or_a_clear_error(name: str) -> None:
    x, y = _pair(name)
    _finite_or_clear_error(name, x[:1], y[:1], ("x", "y"))
    _finite_or_clear_error(name, 1e300 * x[:1], 1e-300 * y[:1], ("x", "y"))


# --------------------------------------------------------------------------- linear algebra


@pytest.mark.parametrize(
    ("routine", "call"),
    [
        ("svdvals", lambda x, y: bures_similarity(x, y)),
        ("svdvals", lambda x, y: procrustes_distance(x, y)),
        ("svdvals", lambda x, y: canonical_correlations(x, y)),
        ("qr", lambda x, y: canonical_correlations(x, y)),
        ("svd", lambda x, y: svcca(x, y)),
    ],
)
def test_a_failing_decomposition_is_a_value_error(
    monkeypatch: pytest.MonkeyPatch, routine: str, call: Callable[[Any, Any], Any]
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise torch.linalg.LinAlgError("the algorithm failed to converge")

    x, y = _pair("bures_similarity")
    monkeypatch.setattr(metrics.torch.linalg, routine, fail)
    with pytest.raises(ValueError, match=r"failed in float64 .*failed to converge.*degenerate"):
        call(x, y)
