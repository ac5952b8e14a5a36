"""Tests for latentbridge.normalization: row normalisations, absolute statistics fitted on the
anchors, the whitening, name look-ups, and the effective-invariance rule on hand-worked
configurations.

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
from latentbridge.analysis import sample_space
from latentbridge.projections import effective_invariances
from latentbridge.transformations import TRANSFORMATIONS, random_transformation

from .test_projections import ref_whitening


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


@pytest.mark.parametrize("name", ["center", "standard", "whiten"])
def test_gradients_flow_to_the_anchors_through_the_statistics(name: str) -> None:
    x = _rows(3, 3, seed=5)

    def normalised_x(anchors: torch.Tensor) -> torch.Tensor:
        shift, scale = N.fit_absolute(name, anchors)
        whitening = N.fit_whitening(anchors) if N.ABSOLUTE[name].whitens else None
        # depends on the anchors only through the statistics
        return N.apply_absolute(name, x, shift, scale, whitening)

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


# --------------------------------------------------------------------------- whiten


def _space(k: int, d: int, seed: int = 0, n: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    points = sample_space(n + k, d, generator=torch.Generator().manual_seed(seed))
    return points[:n], points[n:]


def _whiten(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    shift, scale = N.fit_absolute("whiten", anchors)
    return N.apply_absolute("whiten", x, shift, scale, N.fit_whitening(anchors))


def test_whiten_standardises_as_standard_does() -> None:
    _, a = _space(20, 6)
    for got, expected in zip(
        N.fit_absolute("whiten", a), N.fit_absolute("standard", a), strict=True
    ):
        assert torch.equal(got, expected)


@pytest.mark.parametrize(("k", "d"), [(40, 6), (7, 6), (6, 6), (4, 9), (2, 5)])
def test_whitening_matches_numpy(k: int, d: int) -> None:
    _, a = _space(k, d, seed=k + d)
    w = N.fit_whitening(a)
    assert w.shape == (d, d) and w.dtype == torch.float64
    torch.testing.assert_close(w, w.T, rtol=0, atol=0)
    np.testing.assert_allclose(w.numpy(), ref_whitening(a.numpy()), rtol=1e-8, atol=1e-9)


def test_an_exact_whitening_gives_the_anchors_identity_covariance() -> None:
    _, a = _space(60, 6)
    assert N.whitening_is_exact(a)
    white = _whiten(a, a)
    torch.testing.assert_close(
        white.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-12, rtol=0
    )
    cov = white.T @ white / a.shape[0]
    torch.testing.assert_close(cov, torch.eye(6, dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize(("k", "d"), [(4, 9), (6, 6), (3, 12)])
def test_with_few_anchors_the_floor_removes_what_they_do_not_span(k: int, d: int) -> None:
    """K <= D: the anchors span K - 1 directions; W keeps those (damped where their variance is
    below the floor) and sends the others to 0, instead of amplifying them."""
    x, a = _space(k, d, seed=1)
    assert not N.whitening_is_exact(a)
    w = N.fit_whitening(a)
    assert float(torch.linalg.eigvalsh(w).max()) <= 100.0
    assert int((torch.linalg.eigvalsh(w).abs() > 1e-12).sum()) == k - 1
    # a standardised sample orthogonal to the standardised anchors is removed entirely
    shift, scale = N.fit_absolute("whiten", a)
    units = (a - shift) / scale
    outside = torch.linalg.svd(units).Vh[k - 1 :]  # orthogonal to every standardised anchor
    assert float(_whiten((shift + outside[0] * scale)[None], a).abs().max()) < 1e-12
    # the whitened anchors' covariance has eigenvalue 1 in the directions whose correlation
    # eigenvalue is at or above the floor, less than 1 in the damped ones, 0 outside the span
    correlation_eigenvalues = torch.linalg.eigvalsh(units.T @ units / k)
    white = _whiten(a, a)
    cov_eigenvalues = torch.linalg.eigvalsh(white.T @ white / k)
    assert float(cov_eigenvalues.max()) <= 1.0 + 1e-9
    exact = int((correlation_eigenvalues >= N.WHITENING_FLOOR).sum())
    assert int(((cov_eigenvalues - 1).abs() < 1e-9).sum()) == exact
    assert int((cov_eigenvalues > 1e-12).sum()) == k - 1
    assert torch.isfinite(_whiten(x, a)).all()


def test_the_floor_damps_small_eigenvalues_continuously() -> None:
    """f(l) = l^(-1/2) at or above the floor, (l / floor)^2 / sqrt(floor) below: continuous at
    the floor (100 on both sides), at most 100, increasing below the floor, 0 at 0."""
    floor = N.WHITENING_FLOOR
    f = N._damped_inverse_sqrt
    sides = f(torch.tensor([floor * (1 - 1e-9), floor, floor * (1 + 1e-9)], dtype=torch.float64))
    torch.testing.assert_close(sides, torch.full((3,), 100.0, dtype=torch.float64))
    grid = torch.linspace(0.0, 4 * floor, 401, dtype=torch.float64)
    values = f(grid)
    assert float(values[0]) == 0.0 and float(values.max()) <= 100.0 + 1e-9
    assert bool((values[:100].diff() > 0).all()) and bool((values[101:].diff() < 0).all())
    torch.testing.assert_close(values[100:], grid[100:].rsqrt())


def test_nearly_collinear_features_are_damped_not_amplified() -> None:
    """A correlation eigenvalue of about 1e-8: ZCA would multiply that direction by 1e4."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(500, 3, generator=g, dtype=torch.float64)
    twin = base[:, :1] + 1e-4 * torch.randn(500, 1, generator=g, dtype=torch.float64)
    a = torch.cat([base, twin], dim=1)
    assert not N.whitening_is_exact(a)
    w = N.fit_whitening(a)
    assert float(torch.linalg.eigvalsh(w).max()) <= 100.0
    assert float(torch.linalg.eigvalsh(w).min()) < 1e-2
    np.testing.assert_allclose(w.numpy(), ref_whitening(a.numpy()), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("kind", TRANSFORMATIONS)
@pytest.mark.parametrize("k", [40, 5])
def test_whitening_maps_each_class_as_declared(kind: str, k: int) -> None:
    """n(T z) = n(z) R: R = I for the invariances, R = T's own matrix for signed permutations,
    R orthogonal for rotations and affine maps when the whitening is exact (K = 40 > D = 6);
    with K = 5 <= D those two are not linear maps of n(z) at all."""
    x, a = _space(k, 6, seed=4)
    t = random_transformation(kind, 6, generator=torch.Generator().manual_seed(5))
    points = torch.cat([x, a])
    before, after = _whiten(points, a), _whiten(t(points), t(a))
    whiten = N.ABSOLUTE["whiten"]
    if kind in whiten.invariances:
        torch.testing.assert_close(after, before, atol=1e-9, rtol=0)
        return
    if kind in ("permutation", "sign_flip"):
        torch.testing.assert_close(after, before @ t.weight, atol=1e-9, rtol=0)
        return
    assert whiten.equivariances[kind] == "orthogonal" and kind in whiten.exact_only
    r = torch.linalg.lstsq(before, after).solution
    if k == 40:
        torch.testing.assert_close(before @ r, after, atol=1e-9, rtol=0)
        torch.testing.assert_close(r.T @ r, torch.eye(6, dtype=torch.float64), atol=1e-9, rtol=0)
    else:
        residual = float(torch.linalg.norm(before @ r - after) / torch.linalg.norm(after))
        assert residual > 1e-3


def test_whitening_is_exact() -> None:
    _, a = _space(60, 6)
    assert N.whitening_is_exact(a)
    assert not N.whitening_is_exact(a[:6])  # K = D
    assert not N.whitening_is_exact(a[:3])
    constant = a.clone()
    constant[:, 2] = 1.5
    assert not N.whitening_is_exact(constant)
    assert N.whitening_is_exact(a.clone().requires_grad_())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whiten_leaves_a_constant_feature_out_with_a_warning(dtype: torch.dtype) -> None:
    x, a = _space(40, 5, seed=6)
    x, a = x.to(dtype), a.to(dtype)
    a[:, 1] = 0.1
    with pytest.warns(UserWarning, match=r"1 constant feature\(s\).*'whiten'.*leaves them out"):
        shift, scale = N.fit_absolute("whiten", a)
    assert scale[1] == 1.0
    w = N.fit_whitening(a)
    assert w.dtype == dtype and torch.isfinite(w).all()
    assert torch.equal(w[1], torch.zeros(5, dtype=dtype)) and torch.equal(w[:, 1], w[1])
    white = N.apply_absolute("whiten", x, shift, scale, w)
    assert torch.isfinite(white).all() and torch.equal(white[:, 1], torch.zeros(30, dtype=dtype))
    # the other features are whitened as they are without the constant one
    others = [0, 2, 3, 4]
    torch.testing.assert_close(white[:, others], _whiten(x[:, others], a[:, others]))


def test_whiten_on_one_anchor_is_finite() -> None:
    """One anchor: every feature is constant and left out, every sample maps to 0."""
    x, a = _space(1, 4)
    with pytest.warns(UserWarning, match="constant feature"):
        out = lb.relative_projection(x, a, "euclidean", "whiten")
    assert torch.equal(out, torch.zeros(30, 1, dtype=torch.float64))


@pytest.mark.parametrize(("k", "d"), [(8, 3), (3, 5)])
def test_whiten_gradcheck(k: int, d: int) -> None:
    """Exact (K > D), and with repeated zero eigenvalues (K <= D)."""
    x, a = _space(k, d, seed=8, n=3)
    fn = lambda x, a: lb.relative_projection(x, a, "euclidean", "whiten")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(), a.clone().requires_grad_()))
    leaf = a.clone().requires_grad_()
    (grad,) = torch.autograd.grad(N.fit_whitening(leaf).pow(2).sum(), leaf)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) > 0


@pytest.mark.parametrize("k", [-130, -60, 60, 120])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whiten_is_fitted_without_overflow(dtype: torch.dtype, k: int) -> None:
    """The statistics are computed in units of a power of two per column: scaling the inputs by
    2^k (exact) leaves the output unchanged, from denormal float32 inputs to 2^120."""
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-64, 65, (7, 4), generator=g).double() / 16
    a = torch.randint(-64, 65, (9, 4), generator=g).double() / 16
    out = lb.relative_projection((x * 2.0**k).to(dtype), (a * 2.0**k).to(dtype), "cosine", "whiten")
    ref = lb.relative_projection(x.to(dtype), a.to(dtype), "cosine", "whiten")
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)


def test_whiten_keeps_columns_of_very_different_magnitudes() -> None:
    x, a = _space(30, 3, seed=9)
    col = torch.tensor([2.0**100, 2.0**-100, 1.0], dtype=torch.float64)
    out = lb.relative_projection((x * col).float(), (a * col).float(), "euclidean", "whiten")
    ref = lb.relative_projection(x, a, "euclidean", "whiten")
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_float32_whitening_is_computed_in_float64() -> None:
    _, a = _space(30, 5, seed=10)
    w32 = N.fit_whitening(a.float())
    assert w32.dtype == torch.float32
    torch.testing.assert_close(
        w32.double(), N.fit_whitening(a.float().double()), rtol=1e-6, atol=1e-6
    )


def test_apply_whiten_needs_its_matrix() -> None:
    x, a = _space(20, 4)
    shift, scale = N.fit_absolute("whiten", a)
    with pytest.raises(
        ValueError, match=r"^whitening must be the \(4, 4\) matrix of fit_whitening.*got None"
    ):
        N.apply_absolute("whiten", x, shift, scale)
    with pytest.raises(ValueError, match=r"got shape \(3, 3\)"):
        N.apply_absolute("whiten", x, shift, scale, torch.eye(3, dtype=torch.float64))
    # the other normalisations take no matrix
    assert torch.equal(N.apply_absolute("standard", x, shift, scale), (x - shift) / scale)


# --------------------------------------------------------------------------- name look-ups


def test_registries() -> None:
    assert list(N.ABSOLUTE) == ["none", "center", "standard", "l2", "whiten"]
    assert list(N.RELATIVE) == ["none", "l2", "standardize"]
    assert not N.RELATIVE["none"].removes_scale
    assert N.RELATIVE["l2"].removes_scale and N.RELATIVE["standardize"].removes_scale
    for name, norm in N.ABSOLUTE.items():
        assert N.get_absolute(name) is norm
        assert set(norm.invariances) <= set(TRANSFORMATIONS)
        assert set(norm.equivariances) <= set(TRANSFORMATIONS)
        assert set(norm.equivariances.values()) <= set(TRANSFORMATIONS)
        assert not set(norm.invariances) & set(norm.equivariances)
        assert norm.exact_only <= set(norm.equivariances)
        assert norm.whitens == (name == "whiten") and bool(norm.exact_only) == norm.whitens
        hash(norm)
    whiten = N.ABSOLUTE["whiten"]
    assert whiten.invariances == N.ABSOLUTE["standard"].invariances
    assert dict(whiten.equivariances) == {
        "permutation": "permutation",
        "sign_flip": "sign_flip",
        "orthogonal": "orthogonal",
        "affine": "orthogonal",
    }
    assert whiten.exact_only == {"orthogonal", "affine"}
    for name in ("none", "center", "standard", "l2"):
        assert all(k == v for k, v in N.ABSOLUTE[name].equivariances.items())
    for name, norm in N.RELATIVE.items():
        assert N.get_relative(name) is norm


@pytest.mark.parametrize("bad", ["minmax", "", "Center", None, 3])
def test_get_absolute_names_the_argument(bad: object) -> None:
    options = re.escape("['none', 'center', 'standard', 'l2', 'whiten']")
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

ORTH, ISO, TRANS, PERM, SIGN, DIAG, AFF = (
    "orthogonal",
    "isotropic_scaling",
    "translation",
    "permutation",
    "sign_flip",
    "diagonal_scaling",
    "affine",
)
EVERY = {ORTH, ISO, TRANS, PERM, SIGN, DIAG, AFF}

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
    # whiten maps an affine map (and a rotation) to a rotation when exact, a signed permutation
    # to itself, and removes translations and scalings
    ("cosine", "whiten", "none", EVERY),
    ("euclidean", "whiten", "none", EVERY),
    ("dot", "whiten", "none", EVERY),
    ("angular", "whiten", "standardize", EVERY),
    ("rbf", "whiten", "l2", EVERY),
    ("test_sqeuclidean", "whiten", "none", EVERY),
    ("l1", "whiten", "none", {TRANS, ISO, DIAG, PERM, SIGN}),
    ("linf", "whiten", "standardize", {TRANS, ISO, DIAG, PERM, SIGN}),
    ("test_shifted_dot", "whiten", "none", {TRANS, ISO, DIAG}),
    # center maps an affine map to its linear part: no built-in projection is invariant to it
    ("cosine", "center", "none", {TRANS, ORTH, PERM, SIGN, ISO}),
]


@pytest.mark.parametrize(("projection", "norm", "rel", "expected"), HAND_WORKED)
def test_effective_invariances_hand_worked(
    projection: str, norm: str, rel: str, expected: set
) -> None:
    got = effective_invariances(projection, norm, rel)
    assert isinstance(got, frozenset)
    assert got == expected


def test_exact_whitening_false_leaves_out_what_needs_an_exact_whitening() -> None:
    for projection in ("cosine", "euclidean", "dot", "angular", "rbf"):
        assert effective_invariances(projection, "whiten", exact_whitening=False) == {
            TRANS,
            ISO,
            DIAG,
            PERM,
            SIGN,
        }
    assert effective_invariances("l1", "whiten", exact_whitening=False) == effective_invariances(
        "l1", "whiten"
    )
    for norm in ("none", "center", "standard", "l2"):
        assert effective_invariances("cosine", norm, exact_whitening=False) == (
            effective_invariances("cosine", norm)
        )


def test_effective_invariances_defaults_and_errors() -> None:
    assert effective_invariances("euclidean") == effective_invariances("euclidean", "none", "none")
    with pytest.raises(ValueError, match=r"^projection must be one of"):
        effective_invariances("cosin")
    with pytest.raises(ValueError, match=r"^normalization must be one of"):
        effective_invariances("cosine", "std")
    with pytest.raises(ValueError, match=r"^relative_normalization must be one of"):
        effective_invariances("cosine", "none", "zscore")
