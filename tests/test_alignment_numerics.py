"""Numerics of latentbridge.alignment: any magnitude, any floating dtype, degenerate input.

Every estimator is equivariant to scaling both spaces by one factor ``c`` (its map is conjugated
by ``c``), and those that fit a scale (``Similarity``, ``Affine``, ``Linear``, a ``Translator``
that standardises) to scaling ``x`` and ``y`` by separate factors:

    fit(cx x, cy y).transform(cx z) = cy fit(x, y).transform(z),
    fit(cx x, cy y).inverse_transform(cy w) = cx fit(x, y).inverse_transform(w).

This is checked bit for bit for powers of two (the estimators divide by powers of two, which is
exact), to ``RTOL`` for powers of ten up to 1e±300 (the scaled inputs are rounded, a relative
1e-16, which the well-conditioned fits here amplify by less than 1e4), and in float32 / float16 to
the inputs' own rounding (``LOW_PRECISION_RTOL``). Negative controls: an orthogonal map is not
equivariant to separate scales, and an absolute ridge penalty (scikit-learn's ``alpha``) is not
equivariant at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentbridge import alignment as al
from latentbridge.alignment import (
    Affine,
    AlignmentEstimator,
    Linear,
    Orthogonal,
    Permutation,
    Similarity,
    Translator,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


EXAMPLES = settings(max_examples=max(25, settings().max_examples), deadline=None)
F64 = torch.float64
RTOL = 1e-9
LOW_PRECISION_RTOL = {torch.float32: 1e-4, torch.float16: 3e-2}


@dataclass(frozen=True)
class Case:
    make: Callable[[], AlignmentEstimator]
    dims: tuple[int, int] = (4, 4)
    separate: bool = False  # equivariant to separate scales of x and y
    invertible: bool = True


def _translators() -> dict[str, Case]:
    cases = {}
    for name in al.available():
        fits_scale = name in ("similarity", "affine", "linear")
        for std in (True, False):
            cases[f"Translator({name}, std_scaling={std})"] = Case(
                lambda n=name, s=std: Translator(n, std_scaling=s), separate=std or fits_scale
            )
            for matching, dims in (("zero_padding", (5, 3)), ("pca", (3, 5))):
                cases[f"Translator({name}, std_scaling={std}, {matching}, {dims})"] = Case(
                    lambda n=name, s=std, m=matching: Translator(n, std_scaling=s, dim_matching=m),
                    dims,
                    separate=std or fits_scale,
                    invertible=False,
                )
    return cases


TRANSLATORS = _translators()
CASES: dict[str, Case] = {
    "Orthogonal": Case(Orthogonal),
    "Orthogonal(proper)": Case(lambda: Orthogonal(proper=True)),
    "Similarity": Case(Similarity, separate=True),
    "Similarity(proper)": Case(lambda: Similarity(proper=True), separate=True),
    "Affine": Case(Affine, separate=True),
    "Affine(5, 3)": Case(Affine, (5, 3), separate=True, invertible=False),
    "Affine(ridge)": Case(lambda: Affine(ridge=0.1), separate=True),
    "Affine(ridge, 3, 5)": Case(lambda: Affine(ridge=0.1), (3, 5), True, False),
    "Linear": Case(Linear, separate=True),
    "Linear(ridge, 5, 3)": Case(lambda: Linear(ridge=0.1), (5, 3), True, False),
    "Permutation": Case(Permutation),
    "Permutation(sqeuclidean)": Case(lambda: Permutation(criterion="sqeuclidean")),
    **TRANSLATORS,
}
NAMES = list(CASES)
# The property tests draw the Translator's options (30 combinations) instead of running each.
DRAWN = [n for n in NAMES if n not in TRANSLATORS] + ["Translator"]
translators = st.sampled_from(list(TRANSLATORS))


def _resolve(name: str, translator: str) -> str:
    return translator if name == "Translator" else name


def _data(name: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, y, x_new)``: y a noisy linear image of x (a permutation plus mixing for square
    spaces, so that every estimator has a clear optimum), x_new held out."""
    dx, dy = CASES[name].dims
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(47, dx, generator=g, dtype=F64) + torch.linspace(-1.0, 2.0, dx)
    mixing = 0.3 * torch.randn(dx, dy, generator=g, dtype=F64)
    if dx == dy:
        mixing += torch.eye(dx, dtype=F64)[torch.randperm(dx, generator=g)]
    y = x @ mixing + 0.5 + 0.05 * torch.randn(47, dy, generator=g, dtype=F64)
    return x[:40], y[:40], x[40:]


def _fit(name: str, x: Any, y: Any) -> AlignmentEstimator:
    return CASES[name].make().fit(x, y)


def _scales(name: str, kx: int, ky: int) -> tuple[int, int]:
    return (kx, ky) if CASES[name].separate else (kx, kx)


# --------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("name", DRAWN)
@EXAMPLES
@given(kx=st.integers(-900, 900), shift=st.integers(-900, 900), translator=translators)
def test_power_of_two_scaling_changes_no_bit(
    name: str, kx: int, shift: int, translator: str
) -> None:
    name = _resolve(name, translator)
    # |ky - kx| <= 900: the separate-scale maps (W ~ 2^(ky - kx)) stay normal float64.
    kx, ky = _scales(name, kx, max(-900, min(900, kx + shift)))
    x, y, x_new = _data(name)
    reference = _fit(name, x, y)
    cx, cy = 2.0**kx, 2.0**ky
    scaled = _fit(name, cx * x, cy * y)
    assert torch.equal(scaled.transform(cx * x_new), cy * reference.transform(x_new))
    if CASES[name].invertible:
        y_new = reference.transform(x_new)
        assert torch.equal(
            scaled.inverse_transform(cy * y_new), cx * reference.inverse_transform(y_new)
        )


def _assert_scaled(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    atol = rtol * float(expected.abs().max())
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", DRAWN)
@EXAMPLES
@given(ex=st.integers(-300, 300), shift=st.integers(-300, 300), translator=translators)
def test_decimal_scaling_from_1e_minus_300_to_1e300(
    name: str, ex: int, shift: int, translator: str
) -> None:
    name = _resolve(name, translator)
    # cy / cx stays within 1e300, so the separate-scale maps fit float64.
    ex, ey = _scales(name, ex, max(-300, min(300, ex + shift)))
    x, y, x_new = _data(name)
    reference = _fit(name, x, y)
    cx, cy = 10.0**ex, 10.0**ey
    scaled = _fit(name, (cx * x).numpy(), cy * y)
    out = scaled.transform(cx * x_new)
    assert bool(torch.isfinite(out).all())
    _assert_scaled(out / cy, reference.transform(x_new), RTOL)
    if CASES[name].invertible:
        y_new = reference.transform(x_new)
        _assert_scaled(
            scaled.inverse_transform(cy * y_new) / cx, reference.inverse_transform(y_new), RTOL
        )


LOW = {
    torch.float32: st.integers(-30, 30).map(lambda e: 10.0**e),
    torch.float16: st.integers(-6, 9).map(lambda e: 2.0**e),  # outputs stay below 65504
}


@pytest.mark.parametrize("dtype", list(LOW), ids=str)
@pytest.mark.parametrize("name", DRAWN)
@EXAMPLES
@given(data=st.data(), translator=translators)
def test_low_precision_fit_and_transform(
    name: str, dtype: torch.dtype, data: Any, translator: str
) -> None:
    name = _resolve(name, translator)
    cx = data.draw(LOW[dtype], label="cx")
    cy = data.draw(LOW[dtype], label="cy") if CASES[name].separate else cx
    x, y, x_new = _data(name)
    reference = _fit(name, x, y)
    scaled = _fit(name, (cx * x).to(dtype), (cy * y).to(dtype))
    out = scaled.transform((cx * x_new).to(dtype))
    assert out.dtype == dtype
    _assert_scaled(out.double() / cy, reference.transform(x_new), LOW_PRECISION_RTOL[dtype])


# --------------------------------------------------------------------------- negative controls


def test_separate_scales_break_the_estimators_without_a_scale() -> None:
    # The separate-scale comparison above would catch an estimator that is not equivariant.
    for name in ("Orthogonal", "Permutation", "Translator(orthogonal, std_scaling=False)"):
        x, y, x_new = _data(name)
        expected = 10.0 * _fit(name, x, y).transform(x_new)
        out = _fit(name, x, 10.0 * y).transform(x_new)
        assert float((out - expected).abs().max()) > 0.1 * float(expected.abs().max()), name


def test_an_absolute_ridge_is_not_equivariant_but_the_relative_one_is() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    x, y, x_new = (t.numpy() for t in _data("Affine"))
    for c in (1e-3, 1e3):
        absolute = linear_model.Ridge(alpha=5.0).fit(c * x, c * y).predict(c * x_new) / c
        fixed = linear_model.Ridge(alpha=5.0).fit(x, y).predict(x_new)
        assert np.abs(absolute - fixed).max() > 1e-2  # scikit-learn's alpha: absolute
        relative = Affine(ridge=5.0).fit(c * x, c * y).transform(c * x_new) / c
        _assert_scaled(relative, Affine(ridge=5.0).fit(x, y).transform(x_new), RTOL)
    shrunk = Affine(ridge=5.0).fit(x, y).transform(x_new)
    assert float((shrunk - Affine().fit(x, y).transform(x_new)).abs().max()) > 1e-2  # it acts


# --------------------------------------------------------------------------- closed forms


def _orthogonal(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    return q * torch.sign(torch.diagonal(r))


@pytest.mark.parametrize(
    ("cx", "cy"), [(1e-300, 1e-300), (1e300, 1e300), (1e-150, 1e150), (1e200, 1e-100)]
)
def test_closed_forms_at_extreme_scales(cx: float, cy: float) -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(30, 4, generator=g, dtype=F64) + 1.0
    x_new = torch.randn(6, 4, generator=g, dtype=F64)
    q = _orthogonal(4, 6)
    w = torch.randn(4, 4, generator=g, dtype=F64) + 3.0 * torch.eye(4, dtype=F64)
    b = torch.randn(4, generator=g, dtype=F64)
    perm = torch.tensor([2, 0, 3, 1])

    def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
        _assert_scaled(actual, expected, 1e-10)

    # Orthogonal: Q depends on x^T y only up to a positive factor
    fitted = Orthogonal().fit(cx * x, cy * (x @ q))
    close(fitted.weight_, q)
    close(fitted.inverse_transform(cx * x_new @ q), cx * x_new)
    # Similarity: s = 1.7 cy / cx, t = cy b
    similarity = Similarity().fit(cx * x, cy * (1.7 * x @ q + b))
    assert similarity.scale_ == pytest.approx(1.7 * cy / cx, rel=1e-10)
    close(similarity.weight_, q)
    close(similarity.bias_, cy * b)
    close(similarity.transform(cx * x_new), cy * (1.7 * x_new @ q + b))
    close(similarity.inverse_transform(cy * (1.7 * x_new @ q + b)), cx * x_new)
    # Affine and Linear: W cy / cx, b cy
    affine = Affine().fit(cx * x, cy * (x @ w + b))
    close(affine.weight_, (cy / cx) * w)
    close(affine.bias_, cy * b)
    close(affine.inverse_transform(cy * (x_new @ w + b)), cx * x_new)
    close(Linear().fit(cx * x, cy * (x @ w)).transform(cx * x_new), cy * (x_new @ w))
    # Permutation: the columns are found and reordered exactly
    for criterion in ("correlation", "sqeuclidean"):
        matched = Permutation(criterion=criterion).fit(cx * x, cx * x[:, perm])
        assert torch.equal(matched.permutation_, perm)
        assert torch.equal(matched.transform(cx * x_new), cx * x_new[:, perm])
    # Translator: an orthogonal map between the standardised spaces is recovered (z is white:
    # zero mean, identity covariance, so z Q is standardised too)
    std_x, std_y = torch.logspace(-1, 1, 4, dtype=F64), torch.linspace(0.2, 4.0, 4, dtype=F64)
    z = torch.linalg.svd(x - x.mean(0), full_matrices=False)[0] * len(x) ** 0.5
    translator = Translator().fit(cx * (z * std_x), cy * ((z @ q) * std_y + b))
    close(translator.transform(cx * (z * std_x)), cy * ((z @ q) * std_y + b))


# --------------------------------------------------------------------------- results beyond a dtype


def test_a_result_beyond_the_dtype_is_a_clear_error() -> None:
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(7), dtype=F64)
    tripler = Linear().fit(x, 3.0 * x)
    big = torch.full((2, 3), 3e4, dtype=F64)
    torch.testing.assert_close(tripler.transform(big), 3.0 * big)  # float64 holds 9e4
    with pytest.raises(ValueError, match=r"does not fit in torch\.float16 .*pass x as float64"):
        tripler.transform(big.half())
    with pytest.raises(ValueError, match=r"does not fit in torch\.float32 .*x\.double\(\)"):
        tripler.transform(torch.full((1, 3), 2e38, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"transform\(x\): the result exceeds the float64"):
        tripler.transform(torch.full((1, 3), 1e308, dtype=F64))
    third = Linear().fit(x, x / 3.0)
    with pytest.raises(ValueError, match=r"inverse_transform\(y\).*float16.*pass y as float64"):
        third.inverse_transform(big.half())
    # near the top of float16, a result that fits is returned
    assert bool(torch.isfinite(third.transform(torch.full((1, 3), 6e4).half())).all())


@pytest.mark.parametrize("make", [Similarity, Affine, Linear, lambda: Affine(ridge=1.0)])
def test_a_map_beyond_float64_is_refused_and_leaves_the_estimator_unfitted(
    make: Callable[[], AlignmentEstimator],
) -> None:
    x, y, _ = _data("Affine")
    estimator = make().fit(x, y)
    with pytest.raises(ValueError, match=r"beyond the float64 range|is not finite in float64"):
        estimator.fit(1e-300 * x, 1e300 * y)  # a scale of 1e600
    assert not [k for k in vars(estimator) if k.endswith("_")]  # no stale fitted state
    with pytest.raises(RuntimeError, match="call fit first"):
        estimator.transform(x)


# --------------------------------------------------------------------------- invalid input


def _names(message: str, argument: str) -> bool:
    return re.search(rf"\b{argument}\b", message) is not None


def _bad(z: torch.Tensor) -> list[tuple[str, Any, type[Exception]]]:
    nan, inf = z.clone(), z.clone()
    nan[1, 0] = float("nan")
    inf[0, 1] = float("inf")
    a = z.numpy()
    return [
        ("NaN", nan, ValueError),
        ("Inf", inf, ValueError),
        ("float16 overflow", (z * 1e5).half(), ValueError),
        ("narrow", z[:, :-1], ValueError),
        ("wide", torch.cat([z, z[:, :1]], dim=1), ValueError),
        ("D=0", z[:, :0], ValueError),
        ("1-D", z[0], ValueError),
        ("3-D", z[None], ValueError),
        ("int", z.long(), TypeError),
        ("bool", z > 0, TypeError),
        ("complex", z.to(torch.complex128), TypeError),
        ("numpy int", a.astype(np.int32), TypeError),
        ("object", a.astype(object), TypeError),
        ("list", a.tolist(), TypeError),
        ("None", None, TypeError),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_transform_and_inverse_validate_their_input(name: str) -> None:
    x, y, x_new = _data(name)
    fitted = _fit(name, x, y)
    for label, bad, error in _bad(x_new):
        with pytest.raises(error) as info:
            fitted.transform(bad)
        assert _names(str(info.value), "x"), (label, str(info.value))
    y_new = fitted.transform(x_new)
    for label, bad, error in _bad(y_new):
        with pytest.raises(error) as info:
            fitted.inverse_transform(bad)
        assert _names(str(info.value), "y"), (label, str(info.value))
    empty = fitted.transform(x_new[:0].float())
    assert empty.shape == (0, y.shape[1]) and empty.dtype == torch.float32


@pytest.mark.parametrize("name", NAMES)
def test_fit_validates_its_input(name: str) -> None:
    x, y, _ = _data(name)
    for which in ("x", "y"):
        for label, bad, error in _bad(x if which == "x" else y):
            if label in ("narrow", "wide"):
                continue  # another width is another space, not an error of fit
            with pytest.raises(error) as info:
                CASES[name].make().fit(*((bad, y) if which == "x" else (x, bad)))
            assert _names(str(info.value), which), (label, str(info.value))
    with pytest.raises(ValueError, match=r"at least one paired sample, got N=0"):
        CASES[name].make().fit(x[:0], y[:0])


# --------------------------------------------------------------------------- degenerate data


def _degenerate(kind: str, z: torch.Tensor) -> torch.Tensor:
    if kind == "constant rows":
        return z[:1].expand_as(z).clone()
    if kind == "zeros":
        return torch.zeros_like(z)
    if kind == "constant column":
        out = z.clone()
        out[:, 0] = -2.5
        return out
    if kind == "rank one":
        return torch.outer(z[:, 0], torch.linspace(1.0, 2.0, z.shape[1], dtype=F64))
    if kind == "duplicated rows":
        return z[: len(z) // 2].repeat(2, 1)
    raise AssertionError(kind)


DEGENERATE = ["constant rows", "zeros", "constant column", "rank one", "duplicated rows"]


def _fit_or_clear_error(name: str, x: Any, y: Any) -> AlignmentEstimator | None:
    try:
        fitted = _fit(name, x, y)
    except ValueError as error:
        message = str(error)
        assert any(_names(message, a) for a in ("x", "y", "N", "D_x")), (name, message)
        return None
    return fitted


@pytest.mark.parametrize("name", DRAWN)
@EXAMPLES
@given(
    translator=translators,
    kind=st.sampled_from(DEGENERATE),
    which=st.sampled_from(["x", "y"]),
    rows=st.sampled_from([1, 2, 40]),
    exponent=st.integers(-300, 300),
    k=st.integers(-900, 900),
)
def test_degenerate_data_fits_finitely_or_fails_clearly(
    name: str, translator: str, kind: str, which: str, rows: int, exponent: int, k: int
) -> None:
    name = _resolve(name, translator)
    x, y, x_new = _data(name)
    x, y = x[:rows], y[:rows]
    if which == "x":
        x = _degenerate(kind, x)
    else:
        y = _degenerate(kind, y)
    unscaled = _fit_or_clear_error(name, x, y)
    c = 10.0**exponent
    decimal = _fit_or_clear_error(name, c * x, c * y)
    binary = _fit_or_clear_error(name, 2.0**k * x, 2.0**k * y)
    # the same verdict at every magnitude
    assert (decimal is None) == (unscaled is None) and (binary is None) == (unscaled is None)
    if decimal is None or binary is None or unscaled is None:
        return
    assert bool(torch.isfinite(decimal.transform(c * x_new)).all())
    # Degenerate data leaves part of the map undetermined (a null space, tied columns), which
    # a rounding of the input may resolve differently; an exact scaling changes no bit.
    assert torch.equal(binary.transform(2.0**k * x_new), 2.0**k * unscaled.transform(x_new))


# --------------------------------------------------------------------------- linear algebra


@pytest.mark.parametrize(
    ("routine", "name", "inverse"),
    [
        ("svd", "Orthogonal", False),
        ("svd", "Similarity", False),
        ("svd", "Translator(affine, std_scaling=True, pca, (3, 5))", False),
        ("lstsq", "Affine", False),
        ("lstsq", "Linear", False),
        ("solve", "Affine(ridge)", False),
        ("solve", "Affine", True),
        ("cond", "Linear", True),
    ],
)
def test_a_failing_decomposition_is_a_value_error(
    monkeypatch: pytest.MonkeyPatch, routine: str, name: str, inverse: bool
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise torch.linalg.LinAlgError("the algorithm failed to converge")

    x, y, x_new = _data(name)
    fitted = _fit(name, x, y) if inverse else None
    monkeypatch.setattr(al.torch.linalg, routine, fail)
    with pytest.raises(ValueError, match=r"failed in float64 .*failed to converge.*degenerate"):
        if fitted is not None:
            fitted.inverse_transform(x_new)
        else:
            _fit(name, x, y)
