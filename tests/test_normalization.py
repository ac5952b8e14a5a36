"""Tests for latentbridge.normalization: row normalisations, absolute statistics fitted on the
anchors, name look-ups, and the effective-invariance rule on hand-worked configurations.

The numerical invariance grid lives in test_invariances.py.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

import latentbridge as lb
from latentbridge import normalization as N
from latentbridge.projections import effective_invariances
from latentbridge.transformations import TRANSFORMATIONS


def _rows(
    n: int = 5, k: int = 9, seed: int = 0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (3.0 + 2.0 * torch.randn(n, k, generator=g, dtype=torch.float64)).to(dtype)


# --------------------------------------------------------------------------- standardize_rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_standardize_rows_zero_mean_unit_population_variance(dtype: torch.dtype) -> None:
    x = _rows(dtype=dtype)
    out = N.standardize_rows(x)
    assert out.dtype == dtype and out.shape == x.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out.mean(-1), torch.zeros(5, dtype=dtype), rtol=0, atol=tol)
    # population variance (divide by K, not K - 1)
    torch.testing.assert_close((out**2).mean(-1), torch.ones(5, dtype=dtype), rtol=tol, atol=0)
    ref = (x.double().numpy() - x.double().numpy().mean(1, keepdims=True)) / x.double().numpy().std(
        1, keepdims=True
    )
    np.testing.assert_allclose(out.double().numpy(), ref, rtol=tol, atol=tol)


def test_standardize_rows_acts_on_the_last_axis() -> None:
    x = _rows(6, 7).reshape(2, 3, 7)
    torch.testing.assert_close(
        N.standardize_rows(x), N.standardize_rows(x.reshape(6, 7)).reshape(2, 3, 7)
    )


@pytest.mark.parametrize("c", [1e-30, 1e-3, 7.0, 1e20])
def test_standardize_rows_is_exactly_scale_invariant(c: float) -> None:
    x = _rows()
    out, scaled = N.standardize_rows(x), N.standardize_rows(c * x)
    rel = float(torch.linalg.norm(scaled - out) / torch.linalg.norm(out))
    assert rel < 1e-12
    # a negative factor flips the sign
    torch.testing.assert_close(N.standardize_rows(-c * x), -out, rtol=1e-12, atol=1e-12)


def test_standardize_rows_removes_a_shift() -> None:
    x = _rows()
    torch.testing.assert_close(
        N.standardize_rows(x + 5.0), N.standardize_rows(x), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_standardize_rows_constant_rows_go_to_zero_with_finite_gradient(dtype: torch.dtype) -> None:
    # exactly representable means -> exactly 0; 0.1 and 0.7 (inexact means) -> ~sqrt(eps)
    values = torch.tensor([0.0, 2.0, -3.5, 0.1, 0.7], dtype=dtype)
    x = values[:, None].expand(5, 7).clone().requires_grad_()
    out = N.standardize_rows(x)
    assert torch.equal(out[:3].detach(), torch.zeros(3, 7, dtype=dtype))
    atol = 10 * math.sqrt(torch.finfo(dtype).eps)
    assert float(out.detach().abs().max()) < atol
    weights = torch.linspace(-1.0, 1.0, 7, dtype=dtype)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_standardize_zero_row_gradient_is_bounded(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(2)
    anchors = torch.randn(4, 3, generator=g, dtype=dtype)
    x = torch.zeros(2, 3, dtype=dtype)
    x[1] = torch.randn(3, generator=g, dtype=dtype)
    x.requires_grad_()
    out = lb.relative_projection(x, anchors, "dot", "none", "standardize")
    assert torch.equal(out[0].detach(), torch.zeros(4, dtype=dtype))
    weights = torch.randn(2, 4, generator=g, dtype=dtype)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    assert float(grad[1].abs().max()) < 100  # an ordinary row
    assert float(grad[0].abs().max()) < 1e6  # the all-zero sample


def test_standardize_rows_single_coordinate() -> None:
    assert torch.equal(N.standardize_rows(_rows(4, 1)), torch.zeros(4, 1, dtype=torch.float64))


# --------------------------------------------------------------------------- l2_rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_l2_rows_unit_norm_same_direction(dtype: torch.dtype) -> None:
    x = _rows(dtype=dtype)
    out = N.l2_rows(x)
    assert out.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(
        torch.linalg.norm(out, dim=1), torch.ones(5, dtype=dtype), rtol=tol, atol=0
    )
    ref = x.double().numpy() / np.linalg.norm(x.double().numpy(), axis=1, keepdims=True)
    np.testing.assert_allclose(out.double().numpy(), ref, rtol=tol, atol=tol)


def test_l2_rows_gradcheck() -> None:
    x = _rows(3, 4).requires_grad_()
    assert torch.autograd.gradcheck(N.l2_rows, (x,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_l2_rows_zero_row_stays_zero_with_zero_gradient(dtype: torch.dtype) -> None:
    x = _rows(3, 4, dtype=dtype)
    x[1] = 0.0
    x.requires_grad_()
    out = N.l2_rows(x)
    assert torch.equal(out[1].detach(), torch.zeros(4, dtype=dtype))
    weights = torch.linspace(0.5, 2.0, 12, dtype=dtype).reshape(3, 4)
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[1], torch.zeros(4, dtype=dtype))
    # the other rows get the usual gradient (I - u u^T) w / ||x||
    u = out[0].detach()
    expected = (weights[0] - u * (u @ weights[0])) / torch.linalg.norm(x[0].detach())
    torch.testing.assert_close(grad[0], expected)


# --------------------------------------------------------------------------- fit_absolute


def _anchors(k: int = 4, d: int = 3, seed: int = 1) -> torch.Tensor:
    return _rows(k, d, seed=seed)


def test_fit_center() -> None:
    a = _anchors()
    shift, scale = N.fit_absolute("center", a)
    np.testing.assert_allclose(shift.numpy(), a.numpy().mean(0), rtol=1e-14)
    assert torch.equal(scale, torch.ones(3, dtype=torch.float64))


def test_fit_standard_uses_the_population_std() -> None:
    a = _anchors(k=4)  # small K: ddof 0 and 1 differ by 15%
    shift, scale = N.fit_absolute("standard", a)
    np.testing.assert_allclose(shift.numpy(), a.numpy().mean(0), rtol=1e-14)
    np.testing.assert_allclose(scale.numpy(), a.numpy().std(0, ddof=0), rtol=1e-12)
    normalised = N.apply_absolute("standard", a, shift, scale)
    torch.testing.assert_close(normalised.mean(0), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(
        normalised.std(0, unbiased=False), torch.ones(3, dtype=torch.float64)
    )


def test_fit_standard_on_two_anchors_by_hand() -> None:
    shift, scale = N.fit_absolute("standard", torch.tensor([[0.0, 1.0], [2.0, 5.0]]))
    torch.testing.assert_close(shift, torch.tensor([1.0, 3.0]))
    torch.testing.assert_close(scale, torch.tensor([1.0, 2.0]))
    out = N.apply_absolute("standard", torch.tensor([[3.0, 3.0]]), shift, scale)
    torch.testing.assert_close(out, torch.tensor([[2.0, 0.0]]))


@pytest.mark.parametrize("value", [1.0, 0.1, 1000.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fit_standard_constant_feature_gets_scale_one_with_a_warning(
    value: float, dtype: torch.dtype
) -> None:
    a = _anchors(k=5, d=3).to(dtype)
    a[:, 1] = value
    with pytest.warns(
        UserWarning, match=r"1 constant feature\(s\) \(e\.g\. dimension 1\).*'standard'"
    ):
        shift, scale = N.fit_absolute("standard", a)
    assert scale[1] == 1.0
    expected = torch.from_numpy(a.double().numpy().std(0)).to(dtype)
    torch.testing.assert_close(scale[[0, 2]], expected[[0, 2]])
    torch.testing.assert_close(shift[1], torch.tensor(value, dtype=dtype))


@pytest.mark.parametrize("value", [1.0, 0.1])
def test_constant_feature_gradient_is_finite(value: float) -> None:
    a = _anchors(k=5, d=3)
    a[:, 2] = value
    a.requires_grad_()
    x = _rows(4, 3, seed=9).requires_grad_()
    with pytest.warns(UserWarning, match="constant feature"):
        out = lb.relative_projection(x, a, "euclidean", "standard", "standardize")
    gx, ga = torch.autograd.grad(out.sum() + (out**2).sum(), (x, a))
    assert torch.isfinite(gx).all() and torch.isfinite(ga).all()


def test_fit_standard_no_warning_without_constant_features() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        N.fit_absolute("standard", _anchors())


@pytest.mark.parametrize("name", ["none", "l2"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fit_none_and_l2_are_identity_statistics(name: str, dtype: torch.dtype) -> None:
    shift, scale = N.fit_absolute(name, _anchors(d=6).to(dtype))
    assert torch.equal(shift, torch.zeros(6, dtype=dtype))
    assert torch.equal(scale, torch.ones(6, dtype=dtype))


def test_fit_absolute_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"^normalization must be one of \['none', 'center'"):
        N.fit_absolute("minmax", _anchors())


@pytest.mark.parametrize("name", ["center", "standard"])
def test_gradients_flow_to_the_anchors_through_the_statistics(name: str) -> None:
    x = _rows(3, 3, seed=5)

    def normalised_x(anchors: torch.Tensor) -> torch.Tensor:
        shift, scale = N.fit_absolute(name, anchors)
        return N.apply_absolute(name, x, shift, scale)  # depends on anchors only via the stats

    a = _anchors(k=4, d=3).requires_grad_()
    assert torch.autograd.gradcheck(normalised_x, (a,))
    (grad,) = torch.autograd.grad(normalised_x(a).pow(2).sum(), a)
    assert float(grad.abs().max()) > 1e-3


def test_end_to_end_gradient_includes_the_statistics() -> None:
    x = _rows(6, 3, seed=6)
    a = _anchors(k=5, d=3, seed=7).requires_grad_()
    out = lb.relative_projection(x, a, "cosine", "standard", "l2")
    (full,) = torch.autograd.grad(out.pow(3).sum(), a)

    # the same loss with the statistics frozen: a different gradient
    shift, scale = (t.detach() for t in N.fit_absolute("standard", a))
    xn = N.apply_absolute("standard", x, shift, scale)
    an = N.apply_absolute("standard", a, shift, scale)
    frozen_out = N.apply_relative("l2", lb.projections.get("cosine")(xn, an))
    torch.testing.assert_close(frozen_out, out.detach())
    (frozen,) = torch.autograd.grad(frozen_out.pow(3).sum(), a)
    assert float((full - frozen).abs().max()) > 1e-3


def test_training_the_anchors_end_to_end() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g, dtype=torch.float64)
    target_anchors = torch.randn(6, 4, generator=g, dtype=torch.float64)
    target = lb.relative_projection(x, target_anchors, "euclidean", "standard")
    anchors = target_anchors + 0.5 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    anchors.requires_grad_()
    opt = torch.optim.Adam([anchors], lr=0.02)

    def loss() -> torch.Tensor:
        return (lb.relative_projection(x, anchors, "euclidean", "standard") - target).pow(2).mean()

    first = loss().item()
    for _ in range(150):
        opt.zero_grad()
        value = loss()
        value.backward()
        assert torch.isfinite(anchors.grad).all()
        opt.step()
    assert loss().item() < 0.05 * first


# --------------------------------------------------------------------------- name look-ups


def test_registries() -> None:
    assert list(N.ABSOLUTE) == ["none", "center", "standard", "l2"]
    assert list(N.RELATIVE) == ["none", "l2", "standardize"]
    assert not N.RELATIVE["none"].removes_scale
    assert N.RELATIVE["l2"].removes_scale and N.RELATIVE["standardize"].removes_scale
    for name, norm in N.ABSOLUTE.items():
        assert N.get_absolute(name) is norm
        assert set(norm.invariances) <= set(TRANSFORMATIONS)
        assert set(norm.equivariances) <= set(TRANSFORMATIONS)
    for name, norm in N.RELATIVE.items():
        assert N.get_relative(name) is norm


@pytest.mark.parametrize("bad", ["minmax", "", "Center", None, 3])
def test_get_absolute_names_the_argument(bad: object) -> None:
    options = re.escape("['none', 'center', 'standard', 'l2']")
    with pytest.raises(
        ValueError, match=rf"^normalization must be one of {options}, got {re.escape(repr(bad))}$"
    ):
        N.get_absolute(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^norm_b must be one of"):
        N.get_absolute(bad, argument="norm_b")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["layernorm", "L2", None])
def test_get_relative_names_the_argument(bad: object) -> None:
    options = re.escape("['none', 'l2', 'standardize']")
    with pytest.raises(
        ValueError,
        match=rf"^relative_normalization must be one of {options}, got {re.escape(repr(bad))}$",
    ):
        N.get_relative(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^rel_a must be one of"):
        N.get_relative(bad, argument="rel_a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^relative_normalization must be one of"):
        N.apply_relative(bad, _rows())  # type: ignore[arg-type]


def test_apply_relative() -> None:
    r = _rows()
    assert N.apply_relative("none", r) is r
    torch.testing.assert_close(N.apply_relative("l2", r), N.l2_rows(r))
    torch.testing.assert_close(N.apply_relative("standardize", r), N.standardize_rows(r))


# --------------------------------------------------------------------------- effective invariances

ORTH, ISO, TRANS, PERM, SIGN, DIAG = (
    "orthogonal",
    "isotropic_scaling",
    "translation",
    "permutation",
    "sign_flip",
    "diagonal_scaling",
)

HAND_WORKED = [
    ("dot", "center", "l2", {ORTH, PERM, SIGN, TRANS, ISO}),
    ("rbf", "standard", "none", {TRANS, ISO, DIAG, PERM, SIGN}),
    ("dot", "none", "none", {ORTH, PERM, SIGN}),
    ("dot", "none", "standardize", {ORTH, PERM, SIGN, ISO}),
    ("dot", "standard", "l2", {TRANS, ISO, DIAG, PERM, SIGN}),
    ("cosine", "none", "none", {ORTH, PERM, SIGN, ISO}),
    ("euclidean", "center", "none", {TRANS, ORTH, PERM, SIGN}),
    ("euclidean", "l2", "none", {ISO, ORTH, PERM, SIGN}),
    ("euclidean", "standard", "none", {TRANS, ISO, DIAG, PERM, SIGN}),
    ("l1", "none", "l2", {PERM, SIGN, TRANS, ISO}),
    ("l1", "standard", "standardize", {TRANS, ISO, DIAG, PERM, SIGN}),
    ("linf", "l2", "l2", {ISO, PERM, SIGN}),
    ("angular", "center", "standardize", {TRANS, ORTH, PERM, SIGN, ISO}),
    ("rbf", "l2", "none", {ISO, ORTH, PERM, SIGN}),
    ("rbf", "none", "l2", {ORTH, PERM, SIGN, TRANS, ISO}),
    ("test_sqeuclidean", "none", "l2", {ORTH, PERM, SIGN, TRANS, ISO}),
    ("test_shifted_dot", "none", "standardize", set()),
    ("test_shifted_dot", "center", "none", {TRANS}),
    ("test_shifted_dot", "standard", "l2", {TRANS, ISO, DIAG}),
]


@pytest.mark.parametrize(("projection", "norm", "rel", "expected"), HAND_WORKED)
def test_effective_invariances_hand_worked(
    projection: str, norm: str, rel: str, expected: set
) -> None:
    got = effective_invariances(projection, norm, rel)
    assert isinstance(got, frozenset)
    assert got == expected


def test_effective_invariances_defaults_and_errors() -> None:
    assert effective_invariances("euclidean") == effective_invariances("euclidean", "none", "none")
    with pytest.raises(ValueError, match=r"^projection must be one of"):
        effective_invariances("cosin")
    with pytest.raises(ValueError, match=r"^normalization must be one of"):
        effective_invariances("cosine", "std")
    with pytest.raises(ValueError, match=r"^relative_normalization must be one of"):
        effective_invariances("cosine", "none", "zscore")
