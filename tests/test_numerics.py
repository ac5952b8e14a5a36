"""Numerics of the core at extreme magnitudes, and the input classes a fuzz campaign tries.

The contract: finite input whose true result fits the dtype gives that result; where it does not
fit (an overflow), a ``ValueError`` that names the projection and suggests float64; never a
silent inf or NaN. The references are exact scaling laws: multiplying the inputs by ``2**k``
changes only exponents, so ``r(2**k x, 2**k a) = 2**(k p) r(x, a)`` holds bit for bit in exact
arithmetic for a projection homogeneous of degree ``p`` (0 for cosine, angular, rbf; 1 for the
distances; 2 for dot), and the product of invariances must not change at all.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentbridge as lb
from latentbridge import projections

DEGREE = {"cosine": 0, "angular": 0, "rbf": 0, "euclidean": 1, "l1": 1, "linf": 1, "dot": 2}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Exponent ranges of the inputs' scale 2**k: from denormal inputs to the edge of overflow.
EXPONENTS = {torch.float32: (-140, 124), torch.float64: (-1060, 1018)}


def _data(seed: int, n: int = 7, k: int = 5, d: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples and anchors with few mantissa bits (multiples of 1/16 in [-4, 4]): every scaled
    copy down to 2**-140 (float32) or 2**-1060 (float64) is exactly representable."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-64, 65, (n, d), generator=g).double() / 16
    a = torch.randint(-64, 65, (k, d), generator=g).double() / 16
    a[1] = a[0] + 1  # distinct anchors, for rbf
    return x, a


def _tolerance(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 1e-12


def _fits(log2_peak: float, dtype: torch.dtype) -> bool:
    return log2_peak < math.log2(torch.finfo(dtype).max) - 1


# --------------------------------------------------------------------------- projections


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", sorted(DEGREE))
@settings(max_examples=25)
@given(data=st.data())
def test_projection_obeys_its_scaling_law_at_every_magnitude(
    name: str, dtype: torch.dtype, data: st.DataObject
) -> None:
    lo, hi = EXPONENTS[dtype]
    k = data.draw(st.integers(lo, hi), label="log2 scale")
    x, a = _data(data.draw(st.integers(0, 3), label="seed"))
    reference = projections.relative_projection(x, a, name)  # float64 at scale 1
    scale = 2.0**k
    xs, as_ = (x * scale).to(dtype), (a * scale).to(dtype)
    assert torch.equal(xs.double() / scale, x)  # the scaled inputs are exact
    peak = float(reference.abs().max())
    log2_peak = math.log2(peak) + k * DEGREE[name] if peak > 0 else -math.inf
    if not _fits(log2_peak, dtype):
        with pytest.raises(ValueError, match=rf"{name}.*do not fit .*float64"):
            projections.relative_projection(xs, as_, name)
        return
    out = projections.relative_projection(xs, as_, name)
    assert out.dtype == dtype
    assert bool(torch.isfinite(out).all())
    # Back to scale 1 (exact for normal numbers); results that are denormal (or rounded to 0)
    # in the dtype carry an absolute error of at most one denormal step.
    shift = -k * DEGREE[name]
    back = torch.ldexp(out.double(), torch.tensor(shift))
    denormal_step = math.log2(torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps)
    floor = 2.0 ** min(denormal_step + 1 + shift, 1000)
    tol = _tolerance(dtype) * max(peak, 1e-300) + floor
    assert float((back - reference).abs().max()) <= tol


@pytest.mark.parametrize("name", ["euclidean", "l1", "dot"])
def test_overflow_is_a_clear_error_that_suggests_float64(name: str) -> None:
    x, a = (
        torch.full((2, 4), 4.0, dtype=torch.float64),
        -4.0 + torch.arange(3.0).double()[:, None].expand(3, 4) / 16,
    )
    big = 2.0**124  # the inputs fit float32 (2**126), their distances and products do not
    with pytest.raises(ValueError, match=rf"'{name}'.*do not fit float32.*float64"):
        projections.relative_projection((x * big).float(), (a * big).float(), name)
    # The same inputs in float64 are fine and exact.
    out = projections.relative_projection(x * big, a * big, name)
    expected = projections.relative_projection(x, a, name) * big ** DEGREE[name]
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("dtype", "kx", "ka"), [(torch.float32, 120, -120), (torch.float64, 1000, -990)]
)
def test_dot_of_samples_and_anchors_at_opposite_scales(
    dtype: torch.dtype, kx: int, ka: int
) -> None:
    # Each row is rescaled by its own power of two and the two are applied back together:
    # 2**kx * 2**ka fits although 2**kx times the unit products alone may not.
    x, a = _data(9)
    xs, as_ = (x * 2.0**kx).to(dtype), (a * 2.0**ka).to(dtype)
    xs.requires_grad_(True)
    out = projections.relative_projection(xs, as_, "dot")
    expected = (x @ a.T) * 2.0 ** (kx + ka)
    torch.testing.assert_close(out.double(), expected, rtol=_tolerance(dtype), atol=0)
    out.sum().backward()  # d/dx sum_j <x, a_j> = sum_j a_j, exactly
    assert xs.grad is not None
    expected_grad = as_.double().sum(dim=0).expand_as(xs)
    torch.testing.assert_close(xs.grad.double(), expected_grad, rtol=_tolerance(dtype), atol=0)


@pytest.mark.parametrize("name", ["euclidean", "l1", "linf", "dot", "rbf"])
def test_gradients_are_those_of_the_unscaled_computation(name: str) -> None:
    # At a normal scale the rescaling must be invisible to autograd too.
    x, a = _data(10)
    x.requires_grad_(True)
    a = a.clone().requires_grad_(True)
    projections.relative_projection(x, a, name).square().sum().backward()
    gx, ga = x.grad, a.grad
    x2, a2 = x.detach().clone().requires_grad_(True), a.detach().clone().requires_grad_(True)
    reference = {
        "euclidean": lambda: torch.cdist(x2, a2, compute_mode="donot_use_mm_for_euclid_dist"),
        "l1": lambda: torch.cdist(x2, a2, p=1.0),
        "linf": lambda: torch.cdist(x2, a2, p=float("inf")),
        "dot": lambda: x2 @ a2.T,
        "rbf": lambda: torch.exp(-torch.cdist(x2, a2).square() / projections.rbf_bandwidth(a2)),
    }[name]()
    reference.square().sum().backward()
    torch.testing.assert_close(gx, x2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ga, a2.grad, rtol=1e-12, atol=1e-12)


def test_half_precision_result_beyond_65504_is_an_error_not_inf() -> None:
    x = torch.full((2, 4), 200.0, dtype=torch.float16)
    with pytest.raises(ValueError, match="float16"):
        projections.relative_projection(x, x[:1] + 1, "dot")  # 4 * 200 * 201 > 65504
    small = torch.full((2, 4), 100.0, dtype=torch.float16)
    out = projections.relative_projection(small, small[:1] + 1, "dot")
    assert out.dtype == torch.float16
    assert torch.equal(out.float(), torch.full((2, 1), 4 * 100.0 * 101.0).half().float())


def test_nearby_points_far_from_the_origin_keep_their_digits_after_rescaling() -> None:
    # 1e30 offset: the squared differences overflow float32 unless rescaled, and the offset must
    # not swallow the spread (direct differences are taken after an exact rescaling).
    g = torch.Generator().manual_seed(1)
    base = torch.randn(6, 8, generator=g, dtype=torch.float64)
    spread = torch.randn(6, 8, generator=g, dtype=torch.float64)
    x = (1e30 * base[:1] + 1e25 * spread).float()
    a = (1e30 * base[:1] + 1e25 * spread.flip(0)).float()
    for name in ("euclidean", "l1", "linf", "rbf"):
        out = projections.relative_projection(x, a, name)
        ref = projections.relative_projection(x.double(), a.double(), name)
        torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6 * float(ref.max()))


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (torch.float32, 1e30),
        (torch.float32, 1e-42),
        (torch.float64, 1e300),
        (torch.float64, 1e-300),
    ],
)
def test_rbf_accepts_distinct_anchors_at_any_magnitude(dtype: torch.dtype, scale: float) -> None:
    x, a = _data(2)
    xs, as_ = (x * scale).to(dtype), (a * scale).to(dtype)
    out = projections.relative_projection(xs, as_, "rbf")
    ref = projections.relative_projection(xs.double() / scale, as_.double() / scale, "rbf")
    # Denormal float32 inputs are themselves rounded (1e-42 holds ~10 bits): compare to the
    # reference computed from the very inputs, rescaled.
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    # Negative control: anchors that really are identical still raise, at that scale too.
    same = as_[:1].repeat(3, 1)
    with pytest.raises(ValueError, match="identical"), pytest.warns(UserWarning, match="duplicate"):
        projections.relative_projection(xs, same, "rbf")


# --------------------------------------------------------------------------- normalisations


@pytest.mark.parametrize("normalization", ["center", "standard", "l2"])
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("k", [-130, -60, 60, 120])
def test_normalisations_are_fitted_without_overflow(
    normalization: str, dtype: torch.dtype, k: int
) -> None:
    x, a = _data(3)
    scale = 2.0**k
    # cosine after any of these is invariant to isotropic scaling: the output must not change
    out = projections.relative_projection(
        (x * scale).to(dtype), (a * scale).to(dtype), "cosine", normalization
    )
    ref = projections.relative_projection(x.to(dtype), a.to(dtype), "cosine", normalization)
    torch.testing.assert_close(out, ref, rtol=_tolerance(dtype), atol=_tolerance(dtype))


def test_standard_statistics_keep_columns_of_very_different_magnitudes() -> None:
    # float32 columns at 2**100 and 2**-100: one common power of two would push the small one
    # into the denormal range; per-column ones keep every digit.
    _, a = _data(11, d=2)
    col = torch.tensor([2.0**100, 2.0**-100], dtype=torch.float64)
    shift, scale = lb.normalization.fit_absolute("standard", (a * col).float())
    ref_shift, ref_scale = lb.normalization.fit_absolute("standard", a)
    torch.testing.assert_close(shift.double() / col, ref_shift, rtol=1e-6, atol=0)
    torch.testing.assert_close(scale.double() / col, ref_scale, rtol=1e-6, atol=0)


# --------------------------------------------------------------------------- the product


ALL_PROJECTIONS = ("cosine", "euclidean", "l1", "linf", "dot", "angular", "rbf")


@pytest.mark.parametrize("aggregation", lb.aggregations.available())
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_product_is_scale_invariant_from_denormals_to_overflow(
    aggregation: str, dtype: torch.dtype
) -> None:
    x, a = _data(4)
    torch.manual_seed(0)
    product = lb.ProductProjection(ALL_PROJECTIONS, aggregation, num_anchors=a.shape[0])
    product = product.to(dtype).fit(a.to(dtype))
    ref = product(x.to(dtype)).detach()
    lo, hi = EXPONENTS[dtype]
    for k in (lo, lo + 40, -20, 20, hi - 40, hi):
        scale = 2.0**k
        out = product.with_anchors((a * scale).to(dtype))((x * scale).to(dtype)).detach()
        assert bool(torch.isfinite(out).all()), k
        torch.testing.assert_close(out, ref, rtol=_tolerance(dtype), atol=_tolerance(dtype))


def test_product_relative_subspaces_keep_their_true_values_and_raise_on_overflow() -> None:
    # forward is scale-free; relative() returns the real relative values, so it must refuse
    # values that do not fit rather than return inf (a negative control for the scale-free path).
    x, a = _data(5)
    product = lb.ProductProjection(("euclidean", "dot"), "sum", num_anchors=a.shape[0])
    big = 2.0**100
    product.fit((a * big).float())
    assert bool(torch.isfinite(product((x * big).float())).all())
    with pytest.raises(ValueError, match=r"'dot'.*float32"):
        product.relative((x * big).float())
    ok = lb.ProductProjection(("euclidean",), "sum", num_anchors=a.shape[0]).fit(a * big)
    torch.testing.assert_close(
        ok.relative(x * big)[:, 0],
        projections.relative_projection(x, a, "euclidean") * big,
        rtol=1e-12,
        atol=0,
    )


def test_float64_input_to_a_float32_module_does_not_overflow_when_cast() -> None:
    x, a = _data(6)
    big = 2.0**700
    torch.manual_seed(0)
    product = lb.ProductProjection(num_anchors=a.shape[0]).fit(a)  # float32 parameters
    ref = product(x.float()).detach()
    out = product.with_anchors(a * big)(x * big).detach()  # float64 inputs far beyond float32
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_relative_projection_module_matches_the_function_at_extreme_scales() -> None:
    x, a = _data(7)
    for k in (-140, 120):
        xs, as_ = (x * 2.0**k).float(), (a * 2.0**k).float()
        for name in ("euclidean", "l1", "linf", "rbf", "cosine"):
            module = lb.RelativeProjection(name).fit(as_)
            assert torch.equal(module(xs), projections.relative_projection(xs, as_, name))


# --------------------------------------------------------------------------- shapes and types


def test_zero_features_are_a_clear_error_everywhere() -> None:
    empty = torch.zeros(3, 0)
    with pytest.raises(ValueError, match=r"x must have at least one feature \(D >= 1\)"):
        projections.relative_projection(empty, torch.zeros(2, 0))
    with pytest.raises(ValueError, match=r"anchors must have at least one feature"):
        lb.RelativeProjection("cosine").fit(torch.zeros(2, 0))
    with pytest.raises(ValueError, match=r"anchors must have at least one feature"):
        lb.ProductProjection(num_anchors=2).fit(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="D=1"):
        lb.RelativeProjection("cosine").fit(torch.tensor([[1.0], [2.0]]))(empty)


@pytest.mark.parametrize("name", ALL_PROJECTIONS)
def test_no_samples_give_an_empty_result(name: str) -> None:
    _, a = _data(8)
    out = projections.relative_projection(torch.zeros(0, a.shape[1]), a.float(), name)
    assert out.shape == (0, a.shape[0])
    product = lb.ProductProjection(ALL_PROJECTIONS, num_anchors=a.shape[0]).fit(a)
    assert product(torch.zeros(0, a.shape[1])).shape == (0, a.shape[0])


_BAD_TYPES = [
    np.zeros((3, 2), dtype=np.int64),
    np.zeros((3, 2), dtype=bool),
    np.zeros((3, 2), dtype=np.complex128),
    np.zeros((3, 2), dtype=object),
    torch.zeros(3, 2, dtype=torch.int32),
    torch.zeros(3, 2, dtype=torch.complex64),
    [[0.0, 1.0], [1.0, 0.0]],
    "x",
]


@pytest.mark.parametrize(
    "bad", _BAD_TYPES, ids=lambda b: type(b).__name__ + str(getattr(b, "dtype", ""))
)
def test_wrong_types_are_type_errors_naming_the_argument(bad: object) -> None:
    good = torch.ones(2, 2)
    with pytest.raises(TypeError, match=r"^x "):
        projections.relative_projection(bad, good)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^anchors "):
        projections.relative_projection(good, bad)  # type: ignore[arg-type]


_VALUES = st.sampled_from([0.0, 1.0, -1.0, 1e-45, 1e-300, 1e300, 3e38, 65504.0, math.nan, math.inf])


@settings(max_examples=max(60, settings().max_examples))
@given(
    n=st.integers(0, 4),
    k=st.integers(0, 3),
    d=st.integers(0, 3),
    dtype=st.sampled_from([torch.float16, torch.float32, torch.float64]),
    name=st.sampled_from(ALL_PROJECTIONS),
    normalization=st.sampled_from(["none", "center", "standard", "l2"]),
    fill=_VALUES,
    where=st.integers(0, 100),
    seed=st.integers(0, 2**16),
)
def test_fuzz_every_input_gives_a_finite_result_or_a_clear_error(
    n: int,
    k: int,
    d: int,
    dtype: torch.dtype,
    name: str,
    normalization: str,
    fill: float,
    where: int,
    seed: int,
) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    a = torch.randn(k, d, generator=g, dtype=torch.float64)
    both = torch.cat([x, a]).flatten()
    if both.numel():
        both[where % both.numel()] = fill
    x, a = both[: n * d].reshape(n, d).to(dtype), both[n * d :].reshape(k, d).to(dtype)
    # The only errors a call may raise, each for its reason (checked in this order).
    if k == 0:
        expected = r"^anchors must hold at least one anchor"
    elif d == 0:
        expected = r"^(x|anchors) must have at least one feature"
    elif not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(a).all())):
        expected = r"^(x|anchors) contains \d+ NaN or infinite"  # float16 casts 1e300 to inf
    else:
        expected = rf"^(the '{name}' relative representation .* do not fit|the rbf projection)"
    outputs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate anchors, constant features
        for compute in (
            lambda: projections.relative_projection(x, a, name, normalization),
            lambda: lb.RelativeProjection(name, normalization).fit(a)(x),
        ):
            try:
                outputs.append(compute())
            except ValueError as error:
                assert re.match(expected, str(error)), (expected, str(error))
    if not outputs:
        return
    assert len(outputs) == 2  # the function and the module agree on what is an error
    for out in outputs:
        assert out.shape == (n, k)
        assert out.dtype == dtype
        assert bool(torch.isfinite(out).all())
    assert torch.equal(outputs[0], outputs[1])


# --------------------------------------------------------------------------- anchors


@pytest.mark.parametrize("strategy", ["fps", "kmeans"])
@pytest.mark.parametrize("k", [-1000, -500, 500, 1000])
def test_geometric_anchor_selection_is_scale_invariant(strategy: str, k: int) -> None:
    x = np.random.default_rng(0).integers(-64, 65, size=(40, 3)).astype(np.float64) / 16
    expected = lb.anchors.select(x, 6, strategy, seed=1)
    assert np.array_equal(lb.anchors.select(x * 2.0**k, 6, strategy, seed=1), expected)


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (np.array([1, "a"] * 10, dtype=object), ValueError, "mix of integer, string"),
        (np.array([None, 1] * 10, dtype=object), ValueError, "mix of NoneType, integer"),
        (np.array([0.0, math.nan] * 10), ValueError, "NaN or infinite"),
        (np.array([1.0, math.nan] * 10, dtype=object), ValueError, "NaN or infinite"),
        (np.array([1 + 1j] * 20), TypeError, "integers or strings"),
    ],
)
def test_stratified_labels_that_define_no_classes_are_clear_errors(
    labels: np.ndarray, error: type[Exception], message: str
) -> None:
    x = np.zeros((20, 2))
    with pytest.raises(error, match=message):
        lb.anchors.select(x, 4, "stratified", labels=labels)


def test_stratified_accepts_object_arrays_of_one_kind() -> None:
    x = np.zeros((20, 2))
    as_str = lb.anchors.select(x, 4, "stratified", labels=np.array(["a", "b"] * 10, dtype=object))
    as_int = lb.anchors.select(x, 4, "stratified", labels=np.array([1, 2] * 10, dtype=object))
    expected = lb.anchors.select(x, 4, "stratified", labels=np.array([1, 2] * 10))
    assert np.array_equal(as_int, expected)
    for same_kind in ([False, True] * 10, [1.0, 2.0] * 10, [1, 2.0] * 10):
        labels = np.array(same_kind, dtype=object)
        picked = lb.anchors.select(x, 4, "stratified", labels=labels)
        assert np.array_equal(picked, expected)  # two classes, in the same sorted order
    assert np.array_equal(np.sort(as_str % 2), np.array([0, 0, 1, 1]))
