"""Tests for latentbridge._kernels: the distance kernels under the euclidean, l1, linf and rbf
projections.

Every value is checked against an independent float64 reference written here (a numpy broadcast
of the coordinate differences, or ``torch.cdist`` in float64 with its direct, non-GEMM
algorithm) on the same inputs, on both paths: the numba kernels and the ``torch.cdist``
fallback chosen with ``LATENTBRIDGE_KERNELS=torch``. Shapes cover every remainder of the
kernels' tiles: rows in blocks of 4 (N = 1, 3, 4, 5, 13), anchors in tiles of 64 and 128
(K = 1, 2, 127, 128, 129, 300), and odd and even feature counts (D = 1, 3, 33, 130).

Tolerances. float64: 1e-12 relative. float32: 1e-5 relative, from the error bounds of each
kernel on these inputs: L-infinity is the exact maximum of correctly rounded differences
(2^-24); L1 sums at most D = 130 positive terms (bound (D + 1) 2^-24 < 8e-6, whatever the
order); euclidean is the guarded expansion, whose unguarded entries have d^2 >= scale / 32 and
so a relative error of about 32 eps / 2 on d, a few 1e-6 (the module's own figure is ~1e-5).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import latentbridge as lb
from latentbridge import _kernels

pytestmark = pytest.mark.usefixtures("one_torch_thread")

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

KERNELS: dict[str, tuple[Kernel, float]] = {
    "euclidean": (_kernels.euclidean, 2.0),
    "l1": (_kernels.l1, 1.0),
    "linf": (_kernels.linf, math.inf),
}
NAMES = tuple(KERNELS)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}
NS = (1, 3, 4, 5, 13)
KS = (1, 2, 127, 128, 129, 300)
DS = (1, 3, 33, 130)
PATHS = ("numba", "torch")


# --------------------------------------------------------------------------- helpers


def _set_path(mp: pytest.MonkeyPatch, path: str) -> bool:
    """Select a path through the environment; return whether the numba kernels serve it."""
    if path == "numba":
        if not _kernels.numba_available():
            pytest.skip("numba is not installed (the 'fast' extra)")
        mp.delenv("LATENTBRIDGE_KERNELS", raising=False)
        return True
    mp.setenv("LATENTBRIDGE_KERNELS", "torch")
    return False


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Each path in turn; the value is whether ``use_numba`` should hold on it."""
    return _set_path(monkeypatch, request.param)


def _reference(x: torch.Tensor, anchors: torch.Tensor, p: float) -> np.ndarray:
    """float64 distances of the given inputs by a numpy broadcast of the differences."""
    xd = x.detach().cpu().double().numpy()
    ad = anchors.detach().cpu().double().numpy()
    diff = np.abs(xd[:, None, :] - ad[None, :, :])
    if p == 1.0:
        return diff.sum(-1)
    if p == math.inf:
        return diff.max(-1, initial=0.0)
    return np.sqrt((diff * diff).sum(-1))


def _cdist64(x: torch.Tensor, anchors: torch.Tensor, p: float) -> torch.Tensor:
    """float64 distances by torch.cdist's direct algorithm (for inputs too large to broadcast)."""
    return torch.cdist(
        x.detach().cpu().double(),
        anchors.detach().cpu().double(),
        p=p,
        compute_mode="donot_use_mm_for_euclid_dist",
    )


def _max_rel(actual: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray) -> float:
    """Largest relative error; a zero reference must be matched exactly."""
    a = np.asarray(torch.as_tensor(actual).detach().cpu().double())
    e = np.asarray(torch.as_tensor(expected).detach().cpu().double())
    assert a.shape == e.shape
    if a.size == 0:
        return 0.0
    err = np.abs(a - e)
    rel = np.divide(err, np.abs(e), out=np.zeros_like(err), where=e != 0)
    return float(np.max(np.where((e == 0) & (err != 0), np.inf, rel)))


def _data(
    n: int, k: int, d: int, dtype: torch.dtype, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + 0.25
    a = torch.randn(k, d, generator=g, dtype=torch.float64) - 0.5
    return x.to(dtype), a.to(dtype)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", NAMES)
def test_kernel_values_match_float64_reference_on_every_remainder(
    name: str, dtype: torch.dtype, path: bool
) -> None:
    kernel, p = KERNELS[name]
    seed = 0
    for n in NS:
        for k in KS:
            for d in DS:
                seed += 1
                x, a = _data(n, k, d, dtype, seed)
                assert _kernels.use_numba(x) is path
                out = kernel(x.requires_grad_(), a.requires_grad_())
                assert out.shape == (n, k) and out.dtype == dtype
                # The path really switches: the compiled Function or cdist built the graph.
                backward = type(out.grad_fn).__name__
                if name == "euclidean":
                    assert backward == "_EuclideanBackward"
                else:
                    assert backward == ("_CompiledBackward" if path else "CdistBackward0")
                rel = _max_rel(out, _reference(x, a, p))
                assert rel <= RTOL[dtype], f"N={n} K={k} D={d}: relative error {rel:.3g}"


def test_use_numba_only_for_cpu_float32_and_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATENTBRIDGE_KERNELS", raising=False)
    expected = _kernels.numba_available()
    assert _kernels.use_numba(torch.zeros(2, 2)) is expected
    assert _kernels.use_numba(torch.zeros(2, 2, dtype=torch.float64)) is expected
    assert not _kernels.use_numba(torch.zeros(2, 2, dtype=torch.float16))
    assert not _kernels.use_numba(torch.zeros(2, 2, dtype=torch.bfloat16))
    assert not _kernels.use_numba(torch.zeros(2, 2, device="meta"))
    monkeypatch.setenv("LATENTBRIDGE_KERNELS", "torch")
    assert not _kernels.use_numba(torch.zeros(2, 2))
    monkeypatch.setenv("LATENTBRIDGE_KERNELS", "auto")
    assert _kernels.use_numba(torch.zeros(2, 2)) is expected


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", NAMES)
def test_both_paths_give_the_same_result(
    name: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _kernels.numba_available():
        pytest.skip("numba is not installed (the 'fast' extra)")
    kernel, _ = KERNELS[name]
    for n, k, d in ((5, 129, 33), (13, 300, 130), (4, 2, 3)):
        x, a = _data(n, k, d, dtype, seed=n * k * d)
        results = []
        for path in PATHS:
            with monkeypatch.context() as mp:
                assert _set_path(mp, path) is _kernels.use_numba(x)
                results.append(kernel(x, a))
        assert _max_rel(results[0], results[1]) <= RTOL[dtype]


@pytest.mark.parametrize("name", NAMES)
def test_half_precision_projections_compute_in_float32(name: str, path: bool) -> None:
    # The kernels take float32 and float64 (torch.cdist has no CPU half kernel); the public API
    # computes half precision in float32 and rounds the result (2^-11 relative).
    _, p = KERNELS[name]
    x, a = _data(5, 7, 3, torch.float16)
    out = lb.relative_projection(x, a, name)
    assert out.dtype == torch.float16
    assert _max_rel(out, _reference(x, a, p)) <= 2**-11


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_inputs(name: str, path: bool) -> None:
    kernel, p = KERNELS[name]
    g = torch.Generator().manual_seed(3)
    base_x = torch.randn(10, 12, generator=g, dtype=torch.float64)
    base_a = torch.randn(20, 9, generator=g, dtype=torch.float64)
    x, a = base_x[::2, :9], base_a[::2]  # (5, 9) and (10, 9): strided rows
    w = torch.randn(5, 10, generator=g, dtype=torch.float64)
    rx, ra = x.clone().requires_grad_(), a.clone().requires_grad_()
    torch.cdist(rx, ra, p=p).backward(w)
    column_major = (x.T.contiguous().T, a.T.contiguous().T)
    for xs, as_ in ((x, a), column_major, (x, column_major[1])):
        assert not xs.is_contiguous() and not as_.is_contiguous()
        xs, as_ = xs.detach().requires_grad_(), as_.detach().requires_grad_()
        out = kernel(xs, as_)
        gx, ga = torch.autograd.grad(out, (xs, as_), w)
        torch.testing.assert_close(out, torch.as_tensor(_reference(x, a, p)))
        torch.testing.assert_close(gx, rx.grad)
        torch.testing.assert_close(ga, ra.grad)
        # Only one input needing a gradient.
        (ga_only,) = torch.autograd.grad(kernel(xs.detach(), as_), (as_,), w)
        torch.testing.assert_close(ga_only, ra.grad)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_both_inputs(name: str, path: bool) -> None:
    kernel, _ = KERNELS[name]
    # N = 5 runs the 4-row tile and the padded tail of L-infinity; no ties or zeros at random.
    for n, k, d in ((5, 7, 6), (1, 3, 2)):
        x, a = _data(n, k, d, torch.float64, seed=11 * n + k)
        assert torch.autograd.gradcheck(kernel, (x.requires_grad_(), a.requires_grad_()))


@pytest.mark.parametrize("name", NAMES)
def test_gradient_at_zero_distance(name: str, path: bool) -> None:
    kernel, p = KERNELS[name]
    x, a = _data(6, 4, 5, torch.float64, seed=5)
    x[0] = a[1]
    x[5] = a[3]
    x.requires_grad_()
    a.requires_grad_()
    w = torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = kernel(x, a)
    assert out[0, 1] == 0 and out[5, 3] == 0
    gx, ga = torch.autograd.grad(out, (x, a), w)
    assert torch.isfinite(gx).all() and torch.isfinite(ga).all()
    rx = x.detach().clone().requires_grad_()
    ra = a.detach().clone().requires_grad_()
    torch.cdist(rx, ra, p=p).backward(w)
    torch.testing.assert_close(gx, rx.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ga, ra.grad, rtol=1e-12, atol=1e-12)
    # The zero-distance pair alone contributes exactly nothing (dd/dz taken as 0 at d = 0).
    one = torch.zeros_like(w)
    one[0, 1] = 1.0
    gx, ga = torch.autograd.grad(kernel(x, a), (x, a), one)
    assert torch.equal(gx, torch.zeros_like(gx)) and torch.equal(ga, torch.zeros_like(ga))


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_linf_gradient_on_a_tie_matches_cdist(dtype: torch.dtype, path: bool) -> None:
    # |x - a| = (1, 1, 0.5): the maximum is reached on two coordinates, both get the gradient.
    # Five rows: the first four in the tiled kernel, the last in the padded tail.
    rows = [[1.0, -2.0, 0.5], [0.0, 0.0, 1.0], [2.0, 1.0, 1.5], [-1.0, 0.0, 3.0], [1.0, -2.0, 0.5]]
    x = torch.tensor(rows, dtype=dtype, requires_grad=True)
    a = torch.tensor([[0.0, -1.0, 0.0], [1.0, 1.0, 0.0]], dtype=dtype, requires_grad=True)
    w = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 4.0], [-2.0, 1.0], [1.5, 0.25]], dtype=dtype)
    out = _kernels.linf(x, a)
    gx, ga = torch.autograd.grad(out, (x, a), w)
    rx = x.detach().double().requires_grad_()
    ra = a.detach().double().requires_grad_()
    torch.cdist(rx, ra, p=math.inf).backward(w.double())
    # Row 0: the tie against anchor 0 (weight 1) gives (1, -1, 0); anchor 1 (|x - a| = (0, 3,
    # 0.5), weight 2) adds (0, -2, 0).
    assert gx[0].tolist() == [1.0, -3.0, 0.0]
    # Exact: every weight is dyadic and every sum is exact in either dtype.
    assert torch.equal(gx.double(), rx.grad) and torch.equal(ga.double(), ra.grad)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", PATHS)
@given(data=st.data())
def test_gradients_on_integer_grids_match_cdist(
    name: str, kind: str, dtype: torch.dtype, data: st.DataObject
) -> None:
    """Small integer coordinates: ties in L-infinity, zero differences in L1, zero distances in
    euclidean, all frequent. With integer weights the L1 and L-infinity gradients are exact
    sums in either dtype, so they must equal cdist's float64 gradient bit for bit."""
    kernel, p = KERNELS[name]
    n = data.draw(st.integers(1, 9), label="n")
    k = data.draw(st.integers(1, 6), label="k")
    d = data.draw(st.integers(1, 5), label="d")
    cells = st.integers(-2, 2)
    x = torch.tensor(data.draw(st.lists(cells, min_size=n * d, max_size=n * d)), dtype=dtype)
    a = torch.tensor(data.draw(st.lists(cells, min_size=k * d, max_size=k * d)), dtype=dtype)
    w = torch.tensor(data.draw(st.lists(cells, min_size=n * k, max_size=n * k)), dtype=dtype)
    x, a, w = x.view(n, d).requires_grad_(), a.view(k, d).requires_grad_(), w.view(n, k)
    with pytest.MonkeyPatch.context() as mp:
        _set_path(mp, kind)
        out = kernel(x, a)
        gx, ga = torch.autograd.grad(out, (x, a), w)
    rx = x.detach().double().requires_grad_()
    ra = a.detach().double().requires_grad_()
    ref = torch.cdist(rx, ra, p=p, compute_mode="donot_use_mm_for_euclid_dist")
    ref.backward(w.double())
    assert _max_rel(out, ref) <= RTOL[dtype]
    assert torch.isfinite(gx).all() and torch.isfinite(ga).all()
    if name == "euclidean":
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(gx.double(), rx.grad, rtol=tol, atol=tol * 10)
        torch.testing.assert_close(ga.double(), ra.grad, rtol=tol, atol=tol * 10)
    else:
        assert torch.equal(gx.double(), rx.grad)
        assert torch.equal(ga.double(), ra.grad)


# --------------------------------------------------------------------------- euclidean guard


def _offset_case(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 points with spread 1e-2 around an offset of magnitude 1e4, D = 768."""
    g = torch.Generator().manual_seed(7)
    d = 768
    if kind == "constant":
        offset = torch.full((d,), 1e4, dtype=torch.float64)
    else:
        offset = 1e4 * torch.randn(d, generator=g, dtype=torch.float64)
    x = offset + 1e-2 * torch.randn(500, d, generator=g, dtype=torch.float64)
    a = offset + 1e-2 * torch.randn(200, d, generator=g, dtype=torch.float64)
    return x.float(), a.float()


def _near_duplicates() -> tuple[torch.Tensor, torch.Tensor]:
    """Anchors that are rows of x plus 1e-4 noise, D = 768, float32 (d / |z| ~ 1e-4)."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(500, 768, generator=g)
    a = x[:200] + 1e-4 * torch.randn(200, 768, generator=g)
    return x, a


@pytest.mark.parametrize("kind", ("constant", "per_dimension"))
def test_euclidean_keeps_digits_far_from_the_origin(kind: str) -> None:
    x, a = _offset_case(kind)
    ref = _cdist64(x, a, 2.0)
    assert _max_rel(_kernels.euclidean(x, a), ref) <= 1e-5
    # ... and through the public API.
    out = lb.relative_projection(x, a, "euclidean")
    assert out.dtype == torch.float32
    assert _max_rel(out, ref) <= 1e-5


def test_euclidean_guard_keeps_digits_of_near_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    x, a = _near_duplicates()
    ref = _cdist64(x, a, 2.0)
    assert _max_rel(_kernels.euclidean(x, a), ref) <= 1e-5
    assert _max_rel(lb.relative_projection(x, a, "euclidean"), ref) <= 1e-5
    # Negative control: without the guard the plain expansion cancels the digits.
    monkeypatch.setattr(_kernels, "GUARD", 0.0)
    assert _max_rel(_kernels.euclidean(x, a), ref) > 1e-5


def test_euclidean_guard_in_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The recomputed pairs are processed in blocks: many blocks must give the same values.
    x, a = _near_duplicates()
    x, a = x[:60, :64], a[:40, :64]
    whole = _kernels.euclidean(x, a)
    monkeypatch.setattr(_kernels, "_GUARD_BLOCK", 3 * 64)  # three pairs a block
    blocked = _kernels.euclidean(x, a)
    assert torch.equal(whole, blocked)
    assert _max_rel(blocked, _cdist64(x, a, 2.0)) <= 1e-5


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", NAMES)
def test_repeated_calls_are_bit_identical(name: str, path: bool) -> None:
    kernel, _ = KERNELS[name]
    x, a = _data(37, 150, 70, torch.float32, seed=2)
    w = torch.randn(37, 150, generator=torch.Generator().manual_seed(4))
    results = []
    # The second run reads copies at another alignment (4 bytes off), which must not change
    # the order of any sum.
    for shift in (0, 1):
        xs = torch.empty(x.numel() + shift)[shift:].view_as(x).copy_(x).requires_grad_()
        as_ = torch.empty(a.numel() + shift)[shift:].view_as(a).copy_(a).requires_grad_()
        out = kernel(xs, as_)
        results.append((out.detach(), *torch.autograd.grad(out, (xs, as_), w)))
    for first, second in zip(*results, strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", ("l1", "linf"))
def test_numba_thread_count_does_not_change_bits(
    name: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    numba = pytest.importorskip("numba", reason="numba is not installed (the 'fast' extra)")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread on this machine")
    monkeypatch.delenv("LATENTBRIDGE_KERNELS", raising=False)
    kernel, _ = KERNELS[name]
    x, a = _data(37, 150, 70, dtype, seed=9)
    assert _kernels.use_numba(x)
    w = torch.randn(37, 150, generator=torch.Generator().manual_seed(4), dtype=dtype)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            xr, ar = x.clone().requires_grad_(), a.clone().requires_grad_()
            out = kernel(xr, ar)
            results.append((out.detach(), *torch.autograd.grad(out, (xr, ar), w)))
    finally:
        numba.set_num_threads(before)
    for first, second in zip(*results, strict=True):
        assert torch.equal(first, second)


# --------------------------------------------------------------------------- magnitudes


@pytest.mark.parametrize("scale", (1e30, 1e-30), ids=("1e30", "1e-30"))
@pytest.mark.parametrize("name", NAMES)
def test_projections_rescale_extreme_magnitudes(name: str, scale: float, path: bool) -> None:
    _, p = KERNELS[name]
    g = torch.Generator().manual_seed(12)
    x = (scale * torch.randn(6, 16, generator=g, dtype=torch.float64)).float()
    a = (scale * torch.randn(5, 16, generator=g, dtype=torch.float64)).float()
    ref = _reference(x, a, p)
    out = lb.relative_projection(x, a, name)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert _max_rel(out, ref) <= 1e-5
    if name == "euclidean":
        # Negative control: the kernel alone squares the inputs (overflow or underflow).
        raw = _kernels.euclidean(x, a)
        assert not torch.isfinite(raw).all() or _max_rel(raw, ref) > 1e-5


def test_rbf_runs_on_the_euclidean_kernel_far_from_the_origin() -> None:
    x, a = _offset_case("constant")
    x, a = x[:50], a[:40]
    d2 = _cdist64(x, a, 2.0) ** 2
    ad = a.double()
    bandwidth = (ad.var(dim=0, unbiased=False).sum() * 2 * 40 / 39).item()
    ref = torch.exp(-d2 / bandwidth)
    assert _max_rel(lb.relative_projection(x, a, "rbf"), ref) <= 1e-4


# --------------------------------------------------------------------------- empty inputs


@pytest.mark.parametrize("name", NAMES)
def test_empty_inputs(name: str, path: bool) -> None:
    kernel, _ = KERNELS[name]
    for n, k in ((0, 4), (3, 0), (0, 0)):
        x = torch.randn(n, 5, requires_grad=True)
        a = torch.randn(k, 5, requires_grad=True)
        out = kernel(x, a)
        assert out.shape == (n, k) and out.dtype == torch.float32
        # Backward runs and gives zero gradients of the inputs' shapes.
        gx, ga = torch.autograd.grad(out.sum(), (x, a), allow_unused=True)
        for grad, inp in ((gx, x), (ga, a)):
            assert grad is None or torch.equal(grad, torch.zeros_like(inp))
    # The public API: no samples is fine, no anchors is refused.
    out = lb.relative_projection(torch.randn(0, 5), torch.randn(4, 5), name)
    assert out.shape == (0, 4)
    with pytest.raises(ValueError, match="at least one anchor"):
        lb.relative_projection(torch.randn(3, 5), torch.randn(0, 5), name)


# --------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", NAMES)
def test_kernels_and_projections_on_cuda_match_cpu(name: str, dtype: torch.dtype) -> None:
    kernel, _ = KERNELS[name]
    x, a = _data(13, 129, 33, dtype, seed=21)
    xc, ac = x.cuda().requires_grad_(), a.cuda().requires_grad_()
    assert not _kernels.use_numba(xc)
    w = torch.randn(13, 129, generator=torch.Generator().manual_seed(5), dtype=dtype)
    out = kernel(xc, ac)
    assert out.device.type == "cuda"
    gx, ga = torch.autograd.grad(out, (xc, ac), w.cuda())
    assert gx.device.type == "cuda" and ga.device.type == "cuda"
    xr, ar = x.clone().requires_grad_(), a.clone().requires_grad_()
    cpu = kernel(xr, ar)
    rx, ra = torch.autograd.grad(cpu, (xr, ar), w)
    rtol = RTOL[dtype]  # each side within rtol of the truth
    assert _max_rel(out, cpu) <= 2 * rtol
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(gx.cpu(), rx, rtol=tol, atol=tol)
    torch.testing.assert_close(ga.cpu(), ra, rtol=tol, atol=tol)
    for projection in (name, "rbf"):
        on_gpu = lb.relative_projection(x.cuda(), a.cuda(), projection)
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(
            on_gpu.cpu(), lb.relative_projection(x, a, projection), rtol=2 * rtol, atol=2 * rtol
        )
    if name == "euclidean" and dtype == torch.float32:
        # The guard runs on the device too (nonzero, gather, scatter).
        for xs, as_ in (_near_duplicates(), _offset_case("per_dimension")):
            ref = _cdist64(xs, as_, 2.0)
            assert _max_rel(_kernels.euclidean(xs.cuda(), as_.cuda()), ref) <= 1e-5
            assert _max_rel(lb.relative_projection(xs.cuda(), as_.cuda(), "euclidean"), ref) <= 1e-5


def test_euclidean_gradient_keeps_digits_of_near_duplicates_far_from_the_centre() -> None:
    """The guarded entries' gradients are taken from direct differences too: as precise as
    cdist's float32 gradient, where the expansion alone loses about eps |x_c| / d."""
    torch.manual_seed(3)
    a = torch.randn(50, 64) * 100
    x = a[:10] + 1e-5 * torch.randn(10, 64)

    def grads(fn: Callable[..., torch.Tensor], p: torch.Tensor, q: torch.Tensor):  # type: ignore[no-untyped-def]
        pg, qg = p.clone().requires_grad_(), q.clone().requires_grad_()
        fn(pg, qg).sum().backward()
        return pg.grad.double(), qg.grad.double()

    def direct(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return torch.cdist(p, q, compute_mode="donot_use_mm_for_euclid_dist")

    ref_x, ref_a = grads(direct, x.double(), a.double())
    got_x, got_a = grads(_kernels.euclidean, x, a)
    for got, ref in ((got_x, ref_x), (got_a, ref_a)):
        assert float(((got - ref).norm(dim=1) / ref.norm(dim=1)).max()) < 1e-5


def test_euclidean_under_autocast_computes_in_the_inputs_precision() -> None:
    torch.manual_seed(0)
    x, a = torch.randn(20, 16), torch.randn(30, 16)
    x[:3] = a[:3]  # zero distances: guarded entries
    expected = torch.cdist(x.double(), a.double(), compute_mode="donot_use_mm_for_euclid_dist")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _kernels.euclidean(x, a)
        module = lb.RelativeProjection("euclidean").fit(a)(x)
    assert got.dtype == torch.float32 and module.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(module.double(), expected, rtol=1e-5, atol=1e-5)


def test_double_backward_is_refused_not_wrong() -> None:
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    a = torch.randn(5, 3, dtype=torch.float64)
    for fn in (_kernels.euclidean, _kernels.l1, _kernels.linf):
        (g,) = torch.autograd.grad(fn(x, a).sum(), x, create_graph=True)
        if _kernels.use_numba(x) or fn is _kernels.euclidean:
            with pytest.raises(RuntimeError):
                g.sum().backward()


@pytest.mark.skipif(not _kernels.numba_available(), reason="numba is not installed")
def test_a_forked_child_falls_back_to_cdist() -> None:
    """numba's OpenMP pool is not fork-safe: a child forked after the parent ran the compiled
    kernels computes with torch.cdist instead of aborting, with the same values."""
    import os

    x, a = torch.randn(9, 5), torch.randn(7, 5)
    parent = _kernels.l1(x, a)
    assert _kernels.use_numba(x)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            ok = not _kernels.use_numba(x) and torch.allclose(_kernels.l1(x, a), parent)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and os.waitstatus_to_exitcode(status) == 0
    os.close(read)


def test_a_broken_numba_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setitem(_kernels._STATE, "ready", None)
    monkeypatch.setattr(_kernels, "_compile", broken)
    monkeypatch.setattr(_kernels, "numba_available", lambda: True)
    x, a = torch.randn(6, 4), torch.randn(3, 4)
    with pytest.warns(RuntimeWarning, match="cannot cache function"):
        assert not _kernels.use_numba(x)
    torch.testing.assert_close(_kernels.l1(x, a), torch.cdist(x, a, p=1.0))


@pytest.mark.skipif(not _kernels.numba_available(), reason="numba is not installed")
def test_the_compiled_kernels_leave_torchs_linear_algebra_alone() -> None:
    """A result must not depend on whether an L1 projection ran before it in the process: with
    numba's OpenMP layer, an orthogonal map fitted with fewer anchors than dimensions (its
    undetermined part follows rounding) came out different after one L1 call."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import torch
        from latentbridge import _kernels
        from latentbridge.alignment import Translator
        torch.manual_seed(0)
        a, b, t = torch.randn(256, 384), torch.randn(256, 512), torch.randn(100, 384)
        fit = lambda: Translator(estimator="orthogonal").fit(a, b).transform(t)
        before = fit()
        _kernels.l1(torch.randn(10, 8), torch.randn(5, 8))
        assert _kernels.use_numba(t)
        print(torch.equal(before, fit()))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**env, "OMP_NUM_THREADS": "1"}, check=True)  # fmt: skip
    assert done.stdout.strip() == "True"
