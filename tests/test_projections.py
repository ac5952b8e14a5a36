"""Tests for latentbridge.projections: closed forms, the pipeline, dtypes, precision, gradients,
input validation, the registry.

Every closed form is checked against an independent float64 numpy implementation written here
(loops, not the library's code path). Invariances are covered by test_invariances.py.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import latentbridge as lb
from latentbridge import projections
from latentbridge.normalization import ABSOLUTE, RELATIVE

from .conftest import USER_PROJECTIONS

rp = lb.relative_projection

BUILTINS = ("cosine", "euclidean", "l1", "linf", "dot", "angular", "rbf")
NORMS = tuple(ABSOLUTE)
RELS = tuple(RELATIVE)
DISTANCES = ("euclidean", "l1", "linf")


# --------------------------------------------------------------------------- references


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = math.sqrt(float(u @ u)), math.sqrt(float(v @ v))
    return 0.0 if nu == 0 or nv == 0 else float(u @ v) / (nu * nv)


def _rbf_bandwidth(anchors: np.ndarray) -> float:
    """Mean squared distance over ordered pairs i != j (explicit double loop)."""
    k = len(anchors)
    total = 0.0
    for i in range(k):
        for j in range(k):
            if i != j:
                total += float(((anchors[i] - anchors[j]) ** 2).sum())
    return total / (k * (k - 1))


def ref_projection(name: str, x: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Brute-force float64 reference of each built-in projection."""
    x = np.asarray(x, dtype=np.float64)
    anchors = np.asarray(anchors, dtype=np.float64)
    out = np.empty((len(x), len(anchors)))
    s2 = _rbf_bandwidth(anchors) if name == "rbf" else None
    for i, u in enumerate(x):
        for j, v in enumerate(anchors):
            diff = u - v
            if name == "cosine":
                out[i, j] = _cos(u, v)
            elif name == "euclidean":
                out[i, j] = math.sqrt(sum(d * d for d in diff))
            elif name == "l1":
                out[i, j] = sum(abs(d) for d in diff)
            elif name == "linf":
                out[i, j] = max(abs(d) for d in diff)
            elif name == "dot":
                out[i, j] = sum(a * b for a, b in zip(u, v, strict=True))
            elif name == "angular":
                out[i, j] = math.acos(min(1.0, max(-1.0, _cos(u, v)))) / math.pi
            elif name == "rbf":
                out[i, j] = math.exp(-sum(d * d for d in diff) / s2)
            else:  # pragma: no cover
                raise AssertionError(name)
    return out


def ref_whitening(anchors: np.ndarray, floor: float = 1e-4) -> np.ndarray:
    """numpy reference of the whiten matrix: V f(L) V^T from numpy's eigh of the standardised
    anchors' correlation matrix, f(l) = l^(-1/2) at or above the floor, (l / floor)^2 / sqrt(floor)
    below it."""
    std = anchors.std(axis=0)
    u = np.where(std > 0, (anchors - anchors.mean(axis=0)) / np.where(std > 0, std, 1.0), 0.0)
    values, vectors = np.linalg.eigh(u.T @ u / len(anchors))
    damped = (values / floor) ** 2 / np.sqrt(floor)
    f = np.where(values >= floor, 1.0 / np.sqrt(np.maximum(values, floor)), damped)
    return (vectors * f) @ vectors.T


def ref_pipeline(x: np.ndarray, anchors: np.ndarray, name: str, norm: str, rel: str) -> np.ndarray:
    """numpy reference of relative_norm(projection(norm(x), norm(anchors))), stats on anchors."""
    if norm == "none":
        xn, an = x, anchors
    elif norm == "center":
        mean = anchors.mean(axis=0)
        xn, an = x - mean, anchors - mean
    elif norm == "standard":
        mean, std = anchors.mean(axis=0), anchors.std(axis=0)  # population std (ddof=0)
        xn, an = (x - mean) / std, (anchors - mean) / std
    elif norm == "l2":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        an = anchors / np.linalg.norm(anchors, axis=1, keepdims=True)
    elif norm == "whiten":
        mean, std, w = anchors.mean(axis=0), anchors.std(axis=0), ref_whitening(anchors)
        xn, an = (x - mean) / std @ w, (anchors - mean) / std @ w
    else:  # pragma: no cover
        raise AssertionError(norm)
    r = ref_projection(name, xn, an)
    if rel == "l2":
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
    elif rel == "standardize":
        r = (r - r.mean(axis=1, keepdims=True)) / r.std(axis=1, keepdims=True)
    return r


def _data(n: int, k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    offset = rng.normal(size=d)
    scales = np.exp(rng.uniform(-1, 1, size=d))
    return offset + scales * rng.normal(size=(n, d)), offset + scales * rng.normal(size=(k, d))


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("name", BUILTINS)
@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.tuples(st.integers(1, 7), st.integers(2, 6), st.integers(1, 5)),
)
def test_builtins_match_bruteforce(name: str, seed: int, sizes: tuple[int, int, int]) -> None:
    x, anchors = _data(*sizes, seed=seed)
    got = rp(x, anchors, name)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    assert got.shape == (sizes[0], sizes[1])
    np.testing.assert_allclose(
        got.numpy(), ref_projection(name, x, anchors), rtol=1e-10, atol=1e-12
    )


HAND = [
    # x=[[3,4]], anchors=[[0,0],[3,0]]
    ("euclidean", [[3.0, 4.0]], [[0.0, 0.0], [3.0, 0.0]], [[5.0, 4.0]]),
    ("l1", [[3.0, 4.0]], [[0.0, 0.0], [3.0, 0.0]], [[7.0, 4.0]]),
    ("linf", [[3.0, 4.0]], [[0.0, 0.0], [3.0, 0.0]], [[4.0, 4.0]]),
    ("dot", [[3.0, 4.0]], [[0.0, 0.0], [3.0, 0.0]], [[0.0, 9.0]]),
    ("cosine", [[3.0, 4.0]], [[0.0, 0.0], [3.0, 0.0]], [[0.0, 0.6]]),
    ("linf", [[1.0, -5.0, 2.0]], [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], [[5.0, 6.0]]),
    ("l1", [[1.0, -5.0, 2.0]], [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], [[8.0, 7.0]]),
    # orthogonal -> 0, parallel -> 1, antiparallel -> -1
    ("cosine", [[1.0, 0.0]], [[0.0, 2.0], [3.0, 0.0], [-1.0, 0.0]], [[0.0, 1.0, -1.0]]),
    ("angular", [[2.0, 0.0]], [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], [[0.0, 0.5, 1.0]]),
    ("angular", [[1.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]], [[0.25, 0.5]]),
    # two anchors at distance 2: s^2 = 4
    ("rbf", [[0.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [2.0, 0.0]], [[1.0, math.exp(-1.0)]] * 1
     + [[math.exp(-0.25), math.exp(-0.25)]]),
    # anchors (0,0), (1,0), (0,1): squared distances 1, 1, 2 -> s^2 = 4/3
    ("rbf", [[0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
     [[1.0, math.exp(-0.75), math.exp(-0.75)]]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "x", "anchors", "expected"), HAND)
def test_hand_computed_values(name: str, x: list, anchors: list, expected: list) -> None:
    for dtype in (torch.float64, torch.float32):
        got = rp(torch.tensor(x, dtype=dtype), torch.tensor(anchors, dtype=dtype), name)
        torch.testing.assert_close(got, torch.tensor(expected, dtype=dtype))


def test_rbf_bandwidth_is_the_pairwise_mean_not_the_variance() -> None:
    # Anchors 0 and 4 on a line: s^2 = 16 (pairwise mean); x at 2 sits at squared distance 4.
    got = rp(np.array([[2.0]]), np.array([[0.0], [4.0]]), "rbf")
    torch.testing.assert_close(got, torch.full((1, 2), math.exp(-4.0 / 16.0), dtype=torch.float64))


# --------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize(("name", "norm", "rel"), list(itertools.product(BUILTINS, NORMS, RELS)))
def test_pipeline_matches_numpy(name: str, norm: str, rel: str) -> None:
    x, anchors = _data(6, 5, 4, seed=11)
    got = rp(x, anchors, name, norm, rel)
    expected = ref_pipeline(x, anchors, name, norm, rel)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(("name", "norm", "rel"), list(itertools.product(BUILTINS, NORMS, RELS)))
def test_a_sample_does_not_depend_on_the_rest_of_the_batch(name: str, norm: str, rel: str) -> None:
    x, anchors = _data(8, 5, 4, seed=12)
    full = rp(x, anchors, name, norm, rel)
    torch.testing.assert_close(rp(x[:3], anchors, name, norm, rel), full[:3], rtol=1e-12, atol=0)
    torch.testing.assert_close(rp(x[5:6], anchors, name, norm, rel), full[5:6], rtol=1e-12, atol=0)
    wild = x.copy()
    wild[3:] = 1e6 * np.random.default_rng(0).normal(size=wild[3:].shape)
    torch.testing.assert_close(rp(wild, anchors, name, norm, rel)[:3], full[:3], rtol=1e-12, atol=0)


def test_statistics_are_fitted_on_the_anchors() -> None:
    # Standard normalisation: anchors (0, 2) have mean 1 and population std 1, so x = 3 maps to 2
    # and the anchors to -1, 1: euclidean distances 3 and 1, whatever the batch holds.
    anchors = np.array([[0.0], [2.0]])
    got = rp(np.array([[3.0], [100.0]]), anchors, "euclidean", "standard")
    torch.testing.assert_close(got[0], torch.tensor([3.0, 1.0], dtype=torch.float64))


# --------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("name", BUILTINS)
def test_numpy_and_torch_give_identical_results(name: str) -> None:
    x, anchors = _data(5, 4, 3, seed=3)
    for dtype in (np.float64, np.float32):
        xn, an = x.astype(dtype), anchors.astype(dtype)
        from_numpy = rp(xn, an, name, "center", "l2")
        from_torch = rp(torch.from_numpy(xn), torch.from_numpy(an), name, "center", "l2")
        assert torch.equal(from_numpy, from_torch)
        mixed = rp(xn, torch.from_numpy(an), name, "center", "l2")
        assert torch.equal(mixed, from_torch)


def test_non_contiguous_numpy_input() -> None:
    x, anchors = _data(5, 4, 6, seed=4)
    strided_x = x[:, ::2]
    reversed_anchors = np.ascontiguousarray(anchors[::-1, ::2])[::-1]
    assert not strided_x.flags.c_contiguous and not reversed_anchors.flags.c_contiguous
    got = rp(strided_x, reversed_anchors, "euclidean")
    expected = rp(
        np.ascontiguousarray(strided_x), np.ascontiguousarray(reversed_anchors), "euclidean"
    )
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_dtypes_are_kept(name: str, dtype: torch.dtype) -> None:
    x, anchors = (torch.from_numpy(a).to(dtype) for a in _data(5, 4, 3, seed=5))
    out = rp(x, anchors, name, "standard", "standardize")
    assert out.dtype == dtype


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_and_cast_back(name: str, half: torch.dtype) -> None:
    x, anchors = (torch.from_numpy(a).to(half) for a in _data(5, 4, 3, seed=6))
    out = rp(x, anchors, name)
    assert out.dtype == half
    assert torch.equal(out, rp(x.float(), anchors.float(), name).to(half))
    # numpy float16 too
    out_np = rp(x.numpy(), anchors.numpy(), name) if half == torch.float16 else out
    assert out_np.dtype == half and torch.equal(out_np, out)


@pytest.mark.parametrize(
    ("x_dtype", "a_dtype", "expected"),
    [
        (torch.float32, torch.float64, torch.float64),
        (torch.float64, torch.float32, torch.float64),
        (torch.float16, torch.float64, torch.float64),
        (torch.float16, torch.float32, torch.float32),
        (torch.float32, torch.float16, torch.float32),
    ],
)
def test_mixed_dtypes_promote(
    x_dtype: torch.dtype, a_dtype: torch.dtype, expected: torch.dtype
) -> None:
    x, anchors = (torch.from_numpy(a) for a in _data(5, 4, 3, seed=7))
    x, anchors = x.to(x_dtype), anchors.to(a_dtype)
    for name in BUILTINS:
        out = rp(x, anchors, name)
        assert out.dtype == expected
        # computed on the exact values of the inputs, promoted first
        assert torch.equal(out, rp(x.to(expected), anchors.to(expected), name))


# --------------------------------------------------------------------------- float32 precision


def _far_from_origin(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = (1000.0 + 1e-3 * rng.standard_normal((40, 16))).astype(np.float32)
    anchors = (1000.0 + 1e-3 * rng.standard_normal((30, 16))).astype(np.float32)
    return x, anchors


def _max_rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - ref) / np.abs(ref)))


@pytest.mark.parametrize("name", DISTANCES)
def test_float32_distances_keep_their_digits_far_from_the_origin(name: str) -> None:
    x, anchors = _far_from_origin()
    got = rp(x, anchors, name)
    assert got.dtype == torch.float32
    # reference: float64 on the *same* float32 inputs (exactly representable)
    ref = ref_projection(name, x.astype(np.float64), anchors.astype(np.float64))
    assert ref.min() > 1e-4  # the points are distinct
    assert _max_rel_err(got.numpy(), ref) < 1e-4


def test_negative_control_the_naive_expansion_loses_the_digits() -> None:
    x, anchors = _far_from_origin()
    ref = ref_projection("euclidean", x.astype(np.float64), anchors.astype(np.float64))
    sq = (x**2).sum(1)[:, None] + (anchors**2).sum(1)[None, :] - 2.0 * (x @ anchors.T)
    assert sq.dtype == np.float32
    naive = np.sqrt(np.clip(sq, 0.0, None))
    assert _max_rel_err(naive, ref) > 1e-2
    # torch's own mm-based cdist (its default for large batches) fails the same way
    mm = torch.cdist(
        torch.from_numpy(x), torch.from_numpy(anchors), compute_mode="use_mm_for_euclid_dist"
    )
    assert _max_rel_err(mm.numpy(), ref) > 1e-2


def test_float32_rbf_keeps_its_digits_far_from_the_origin() -> None:
    x, anchors = _far_from_origin()
    got = rp(x, anchors, "rbf").numpy().astype(np.float64)
    ref = ref_projection("rbf", x.astype(np.float64), anchors.astype(np.float64))
    assert np.max(np.abs(got - ref)) < 2e-5


# --------------------------------------------------------------------------- gradients


def _leaf(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64)).requires_grad_()


@pytest.mark.parametrize("name", BUILTINS)
def test_gradcheck_builtins(name: str) -> None:
    x, anchors = _data(4, 5, 3, seed=21)
    assert torch.autograd.gradcheck(lambda x, a: rp(x, a, name), (_leaf(x), _leaf(anchors)))


@pytest.mark.parametrize(("norm", "rel"), list(itertools.product(NORMS, RELS)))
@pytest.mark.parametrize("name", ["cosine", "euclidean", "rbf"])
def test_gradcheck_through_the_pipeline(name: str, norm: str, rel: str) -> None:
    x, anchors = _data(3, 4, 3, seed=22)
    fn = lambda x, a: rp(x, a, name, norm, rel)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (_leaf(x), _leaf(anchors)))


def _grads(name: str, x: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_()
    anchors = anchors.detach().clone().requires_grad_()
    out = rp(x, anchors, name)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    gx, ga = torch.autograd.grad((out * weights).sum(), (x, anchors))
    return out, gx, ga


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["euclidean", "l1", "linf", "rbf", "angular", "cosine"])
def test_no_nan_gradient_at_zero_distance(name: str, dtype: torch.dtype) -> None:
    _, anchors = _data(1, 5, 4, seed=23)
    anchors = torch.from_numpy(anchors).to(dtype)
    x = torch.cat([anchors[[1, 3]], anchors[:1] + 0.5])  # two rows equal to anchors
    out, gx, ga = _grads(name, x, anchors)
    assert torch.isfinite(out).all() and torch.isfinite(gx).all() and torch.isfinite(ga).all()
    if name in DISTANCES:
        assert out[0, 1] == 0 and out[1, 3] == 0
    if name == "rbf":
        assert out[0, 1] == 1 and out[1, 3] == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_distance_has_zero_subgradient(dtype: torch.dtype) -> None:
    anchors = torch.tensor([[1.0, 2.0, -1.0]], dtype=dtype)
    for name in DISTANCES:
        _, gx, ga = _grads(name, anchors.clone(), anchors)
        assert torch.equal(gx, torch.zeros_like(gx)) and torch.equal(ga, torch.zeros_like(ga))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 3.7, -2.0])
def test_angular_at_the_tip_of_the_cone(dtype: torch.dtype, scale: float) -> None:
    # x a positive (or negative) multiple of an anchor: cos = +-1, arccos' infinite there
    _, anchors = _data(1, 4, 3, seed=24)
    anchors = torch.from_numpy(anchors).to(dtype)
    x = scale * anchors[:2]
    out, gx, ga = _grads("angular", x, anchors)
    assert torch.isfinite(gx).all() and torch.isfinite(ga).all()
    expected = 0.0 if scale > 0 else 1.0
    tol = 1e-3 if dtype == torch.float32 else 1e-6
    assert abs(float(out[0, 0].detach()) - expected) < tol
    assert abs(float(out[1, 1].detach()) - expected) < tol
    assert ((out >= 0) & (out <= 1)).all()


@pytest.mark.parametrize("name", ["cosine", "angular"])
def test_zero_vectors_in_cosine(name: str) -> None:
    x, anchors = _data(3, 4, 3, seed=25)
    x[1] = 0.0
    anchors[2] = 0.0
    out, gx, ga = _grads(name, torch.from_numpy(x), torch.from_numpy(anchors))
    assert torch.isfinite(out).all() and torch.isfinite(gx).all() and torch.isfinite(ga).all()
    value = 0.0 if name == "cosine" else 0.5  # cosine 0 for a zero vector; arccos(0)/pi = 1/2
    assert torch.equal(out[1], torch.full((4,), value, dtype=torch.float64))
    assert torch.equal(out[:, 2], torch.full((3,), value, dtype=torch.float64))
    # the other entries are untouched by the zero vectors
    np.testing.assert_allclose(
        out[[0, 2]][:, [0, 1, 3]].detach().numpy(),
        ref_projection(name, x[[0, 2]], anchors[[0, 1, 3]]),
        rtol=1e-12,
    )
    assert torch.equal(gx[1], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(ga[2], torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["cosine", "angular"])
def test_cosine_ignores_the_norm_of_each_vector(name: str, dtype: torch.dtype) -> None:
    # Small and large (but not extreme) norms: each row rescaled by its own positive factor.
    x, anchors = (torch.from_numpy(a).to(dtype) for a in _data(6, 5, 3, seed=26))
    fx = torch.tensor([1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e5], dtype=dtype)[:, None]
    fa = torch.tensor([1e5, 1e-6, 3.0, 1e-3, 1e3], dtype=dtype)[:, None]
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(rp(fx * x, fa * anchors, name), rp(x, anchors, name), **tol)


# --------------------------------------------------------------------------- bad input


def _ok() -> tuple[np.ndarray, np.ndarray]:
    return _data(3, 4, 2, seed=31)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x(bad: float) -> None:
    x, anchors = _ok()
    x[1, 0] = bad
    with pytest.raises(ValueError, match=r"^x contains 1 NaN or infinite value\(s\).*\(1, 0\)"):
        rp(x, anchors)
    with pytest.raises(ValueError, match=r"^x contains"):
        rp(torch.from_numpy(x).float(), torch.from_numpy(anchors).float(), "euclidean")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_anchors(bad: float) -> None:
    x, anchors = _ok()
    anchors[2, 1] = bad
    with pytest.raises(ValueError, match=r"^anchors contains 1 NaN or infinite value\(s\)"):
        rp(x, anchors)
    with pytest.raises(ValueError, match=r"^anchors contains"):
        rp(torch.from_numpy(x).half(), torch.from_numpy(anchors).half(), "rbf", "standard")


def test_feature_dimensions_differ() -> None:
    x, _ = _ok()
    with pytest.raises(
        ValueError, match=r"x and anchors must have the same feature dimension.*D=2.*D=3"
    ):
        rp(x, np.zeros((4, 3)))


def test_no_anchors() -> None:
    x, _ = _ok()
    with pytest.raises(ValueError, match=r"anchors must hold at least one anchor"):
        rp(x, np.zeros((0, 2)))


@pytest.mark.parametrize(
    ("x_shape", "a_shape", "pattern"),
    [
        ((2,), (4, 2), r"^x must be 2-D with shape \(N, D\), got shape \(2,\); .*x\[None\]"),
        ((1, 3, 2), (4, 2), r"^x must be 2-D"),
        ((3, 2), (2,), r"^anchors must be 2-D with shape \(K, D\), got shape \(2,\)"),
        ((3, 2), (1, 4, 2), r"^anchors must be 2-D"),
        ((), (4, 2), r"^x must be 2-D"),
    ],
)
def test_wrong_rank(x_shape: tuple, a_shape: tuple, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        rp(np.ones(x_shape), np.ones(a_shape))


@pytest.mark.parametrize(
    ("x", "anchors", "pattern"),
    [
        (np.ones((2, 2), dtype=np.int64), np.ones((3, 2)), r"^x must hold floating-point.*int64"),
        (np.ones((2, 2)), np.ones((3, 2), dtype=np.int32), r"^anchors must hold floating-point"),
        (torch.ones(2, 2, dtype=torch.int64), torch.ones(3, 2), r"^x must hold floating-point"),
        (torch.ones(2, 2), torch.ones(3, 2, dtype=torch.bool), r"^anchors must hold floating"),
        (np.ones((2, 2), dtype=bool), np.ones((3, 2)), r"^x must hold floating-point"),
        (np.ones((2, 2), dtype=complex), np.ones((3, 2)), r"^x must hold floating-point"),
        (torch.ones(2, 2, dtype=torch.complex64), torch.ones(3, 2), r"^x must hold floating"),
        ([[1.0, 2.0]], np.ones((3, 2)), r"^x must be a torch.Tensor or a numpy.ndarray, got list"),
        (np.ones((2, 2)), [[1.0, 2.0]], r"^anchors must be a torch.Tensor or a numpy.ndarray"),
        (np.ones((2, 2)), 3.0, r"^anchors must be a torch.Tensor or a numpy.ndarray, got float"),
    ],
)
def test_wrong_types(x: object, anchors: object, pattern: str) -> None:
    with pytest.raises(TypeError, match=pattern):
        rp(x, anchors)  # type: ignore[arg-type]


def test_unknown_names_list_the_options() -> None:
    x, anchors = _ok()
    with pytest.raises(
        ValueError,
        match=re.escape(f"projection must be one of {projections.available()}, got 'cosin'"),
    ):
        rp(x, anchors, "cosin")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "normalization must be one of ['none', 'center', 'standard', 'l2', 'whiten'], got 'std'"
        ),
    ) as info:
        rp(x, anchors, "cosine", "std")
    assert str(info.value).startswith("normalization")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "relative_normalization must be one of ['none', 'l2', 'standardize'], got 'zscore'"
        ),
    ):
        rp(x, anchors, "cosine", "none", "zscore")
    with pytest.raises(TypeError, match="projection must be a string name"):
        rp(x, anchors, None)  # type: ignore[arg-type]


def test_names_are_checked_before_the_data() -> None:
    # An unknown name is reported even when the data are also bad (NaN).
    x, anchors = _ok()
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="projection must be one of"):
        rp(x, anchors, "nope")


def test_duplicate_anchors_warn_at_the_caller() -> None:
    x, anchors = _ok()
    dup = np.concatenate([anchors, anchors[1:3]])
    with pytest.warns(UserWarning, match=r"anchors holds 2 duplicate row\(s\) out of 6") as record:
        out = rp(x, dup, "euclidean")
    assert record[0].filename == __file__
    torch.testing.assert_close(out[:, 4:], out[:, 1:3], rtol=0, atol=0)


def test_distinct_anchors_do_not_warn() -> None:
    x, anchors = _ok()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in BUILTINS:
            rp(x, anchors, name, "standard", "standardize")


def test_rbf_needs_two_anchors() -> None:
    x, anchors = _ok()
    with pytest.raises(ValueError, match="rbf projection needs at least 2 anchors"):
        rp(x, anchors[:1], "rbf")


@pytest.mark.parametrize("value", [0.0, 1.0, -2.5])
def test_rbf_identical_anchors(value: float) -> None:
    x, _ = _ok()
    with pytest.warns(UserWarning, match="duplicate"):
        with pytest.raises(ValueError, match="rbf projection needs distinct anchors"):
            rp(x, np.full((3, 2), value), "rbf")


@pytest.mark.parametrize(
    ("value", "k", "dtype"), [(0.1, 3, np.float64), (0.7, 3, np.float64), (0.1, 7, np.float32)]
)
def test_rbf_identical_anchors_with_inexact_mean(value: float, k: int, dtype: type) -> None:
    x = np.zeros((1, 2), dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="rbf projection needs distinct anchors"):
            rp(x, np.full((k, 2), value, dtype=dtype), "rbf")


@pytest.mark.parametrize("scale", [1e-25, 1e20])
def test_cosine_at_extreme_float32_magnitudes(scale: float) -> None:
    x, anchors = (torch.from_numpy(a).float() for a in _data(3, 4, 3, seed=32))
    torch.testing.assert_close(rp(scale * x, scale * anchors), rp(x, anchors))


# --------------------------------------------------------------------------- empty batch


@pytest.mark.parametrize(("name", "norm", "rel"), list(itertools.product(BUILTINS, NORMS, RELS)))
def test_empty_batch(name: str, norm: str, rel: str) -> None:
    _, anchors = _ok()
    for dtype in (np.float32, np.float64):
        out = rp(np.zeros((0, 2), dtype=dtype), anchors.astype(dtype), name, norm, rel)
        assert out.shape == (0, 4) and out.dtype == torch.from_numpy(np.zeros(0, dtype)).dtype


# --------------------------------------------------------------------------- registry


@pytest.fixture
def registry() -> Iterator[None]:
    """Leave the global registry exactly as conftest left it."""
    before = {name: projections.get(name) for name in projections.available()}
    order = projections.available()
    try:
        yield
    finally:
        for name in projections.available():
            if name not in before:
                projections.unregister(name)
        assert projections.available() == order
        assert all(projections.get(n) is p for n, p in before.items())


def test_available_lists_the_builtins_first_in_order() -> None:
    names = projections.available()
    assert tuple(names[:7]) == BUILTINS
    assert set(USER_PROJECTIONS) <= set(names[7:])
    names.append("mutated")
    assert "mutated" not in projections.available()


def test_builtin_metadata() -> None:
    for name in BUILTINS:
        p = projections.get(name)
        assert isinstance(p, projections.Projection) and p.name == name
        assert p.description  # taken from the docstring
        assert not (p.invariances & p.scaled_by)
    assert projections.get("euclidean").scaled_by == {"isotropic_scaling"}
    assert projections.get("dot").scaled_by == {"isotropic_scaling"}
    assert projections.get("cosine").scaled_by == frozenset()
    assert projections.get("rbf").invariances == {
        "orthogonal", "permutation", "sign_flip", "translation", "isotropic_scaling"
    }  # fmt: skip
    assert projections.get("angular").invariances == projections.get("cosine").invariances


def test_get_unknown() -> None:
    with pytest.raises(
        ValueError, match=r"projection must be one of \['cosine', 'euclidean'.*got 'x'"
    ):
        projections.get("x")
    with pytest.raises(TypeError, match="projection must be a string name, got int"):
        projections.get(3)  # type: ignore[arg-type]


def _halved_l1(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Half the L1 distance."""
    return 0.5 * (x[:, None, :] - anchors[None, :, :]).abs().sum(-1)


@pytest.mark.usefixtures("registry")
def test_register_as_a_call() -> None:
    p = projections.register(
        "_tp_half_l1", _halved_l1, invariances={"permutation", "translation"},
        scaled_by={"isotropic_scaling"},
    )  # fmt: skip
    assert isinstance(p, projections.Projection) and projections.get("_tp_half_l1") is p
    assert p.function is _halved_l1 and p.description == "Half the L1 distance."
    assert p.invariances == {"permutation", "translation"}
    assert projections.available()[-1] == "_tp_half_l1"
    x, anchors = _ok()
    torch.testing.assert_close(rp(x, anchors, "_tp_half_l1"), 0.5 * rp(x, anchors, "l1"))
    # it goes through the normalisations like a built-in
    torch.testing.assert_close(
        rp(x, anchors, "_tp_half_l1", "standard", "l2"), rp(x, anchors, "l1", "standard", "l2")
    )
    inv = projections.effective_invariances("_tp_half_l1", relative_normalization="l2")
    assert inv == {"permutation", "translation", "isotropic_scaling"}
    assert "isotropic_scaling" not in projections.effective_invariances("_tp_half_l1")


@pytest.mark.usefixtures("registry")
def test_register_as_a_decorator() -> None:
    @projections.register("_tp_neg_sq", invariances=["orthogonal", "translation"], description="d")
    def neg_sq(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x, anchors).pow(2)

    assert callable(neg_sq) and not isinstance(neg_sq, projections.Projection)
    p = projections.get("_tp_neg_sq")
    assert p.function is neg_sq and p.description == "d"
    x, anchors = _ok()
    expected = -(ref_projection("euclidean", x, anchors) ** 2)
    np.testing.assert_allclose(rp(x, anchors, "_tp_neg_sq").numpy(), expected, rtol=1e-10)


@pytest.mark.usefixtures("registry")
def test_register_existing_name() -> None:
    projections.register("_tp_dup", _halved_l1, invariances=())
    with pytest.raises(ValueError, match="'_tp_dup' is already registered; pass overwrite=True"):
        projections.register("_tp_dup", _halved_l1, invariances=())
    with pytest.raises(ValueError, match="already registered"):
        projections.register("_tp_dup", invariances=())(_halved_l1)
    replaced = projections.register("_tp_dup", torch.cdist, invariances=(), overwrite=True)
    assert projections.get("_tp_dup") is replaced and replaced.function is torch.cdist
    assert projections.available().count("_tp_dup") == 1


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize("name", BUILTINS)
def test_builtins_cannot_be_replaced_or_removed(name: str) -> None:
    original = projections.get(name)
    with pytest.raises(ValueError, match="already registered"):
        projections.register(name, _halved_l1, invariances=())
    with pytest.raises(ValueError, match=f"the built-in projection '{name}' cannot be replaced"):
        projections.register(name, _halved_l1, invariances=(), overwrite=True)
    with pytest.raises(
        ValueError, match=f"the built-in projection '{name}' cannot be unregistered"
    ):
        projections.unregister(name)
    assert projections.get(name) is original


@pytest.mark.usefixtures("registry")
def test_register_validates_its_arguments() -> None:
    with pytest.raises(
        ValueError, match=r"invariances contains unknown transformation class\(es\) \['rotation'\]"
    ):
        projections.register("_tp_bad", _halved_l1, invariances={"orthogonal", "rotation"})
    with pytest.raises(ValueError, match=r"scaled_by contains unknown .*\['shear'\]"):
        projections.register("_tp_bad", _halved_l1, invariances=(), scaled_by=["shear"])
    with pytest.raises(TypeError, match="invariances must be a collection of transformation names"):
        projections.register("_tp_bad", _halved_l1, invariances="orthogonal")
    with pytest.raises(TypeError, match="scaled_by must be a collection"):
        projections.register("_tp_bad", _halved_l1, invariances=(), scaled_by="isotropic_scaling")
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        projections.register("", _halved_l1, invariances=())
    with pytest.raises(TypeError, match="function must be callable"):
        projections.register("_tp_bad", 3, invariances=())  # type: ignore[call-overload]
    assert "_tp_bad" not in projections.available()


@pytest.mark.usefixtures("registry")
def test_orthogonal_is_closed_over_its_subgroups() -> None:
    p = projections.register("_tp_orth", _halved_l1, invariances={"orthogonal"})
    assert p.invariances == {"orthogonal", "permutation", "sign_flip"}
    # a scaling declared also as an invariance is not "scaled by"
    q = projections.register(
        "_tp_orth2", _halved_l1, invariances={"isotropic_scaling"},
        scaled_by={"isotropic_scaling", "orthogonal"},
    )  # fmt: skip
    assert q.scaled_by == {"orthogonal", "permutation", "sign_flip"}


@pytest.mark.usefixtures("registry")
def test_unregister_removes() -> None:
    projections.register("_tp_gone", _halved_l1, invariances=())
    x, anchors = _ok()
    rp(x, anchors, "_tp_gone")
    projections.unregister("_tp_gone")
    assert "_tp_gone" not in projections.available()
    with pytest.raises(ValueError, match="projection must be one of"):
        rp(x, anchors, "_tp_gone")
    with pytest.raises(ValueError, match="projection must be one of"):
        projections.unregister("_tp_gone")
