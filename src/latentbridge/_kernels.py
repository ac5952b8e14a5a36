"""Distance kernels of the relative projections: euclidean at GEMM speed, L1 and L-infinity
compiled.

``euclidean(x, anchors)``
    ``||z - a||`` from the matrix-product expansion ``|z_c|^2 + |a_c|^2 - 2 <z_c, a_c>`` on
    inputs centred on the anchors' mean (``z_c = z - m``, ``a_c = a - m``; distances do not
    change), so the cost is one GEMM. The expansion loses digits where a distance is small
    against the norms (nearby points far from the centre): every entry whose squared distance
    is below :data:`GUARD` times ``|z_c|^2 + |a_c|^2`` is recomputed from direct coordinate
    differences, which keeps the relative error of the others near ``eps / GUARD`` times the
    GEMM's accumulation error (an estimate; measured below 1e-6 in float32, see the tests).
    Backward is two more GEMMs (``dd/dz = (z - a) / d``, taken as 0 at ``d = 0``, as
    ``torch.cdist`` does), with the guarded entries' terms again from direct differences.
    Autocast is turned off inside (half precision would cancel most digits).

``l1(x, anchors)`` and ``linf(x, anchors)``
    Direct differences, compiled with numba when it is installed (the ``fast`` extra): one
    pass over ``N x K x D`` in cache-sized blocks, threads over rows (forward and ``dx``) or
    anchors (``d anchors``), each output written by one thread in a fixed order, so results
    are deterministic and do not depend on the number of threads (as many as torch uses).
    Without numba (or where it fails to compile: a warning says why), with
    ``LATENTBRIDGE_KERNELS=torch``, on other devices, for dtypes other than float32 and
    float64, and in a child forked from a process that ran them (its thread pool does not
    survive a fork), ``torch.cdist`` computes them: the same values up to rounding; on a GPU in row
    blocks, since its backward there allocates an ``rows x K x D`` buffer. Backward of L1 is
    ``sign(z - a)``; of L-infinity ``sign(z - a)`` on the coordinates where ``|z - a|`` reaches
    the distance (all of them on a tie), as ``torch.cdist``.

The kernels' backward is not differentiable again (a second derivative raises) and
``torch.func`` transforms (``vmap``, ``grad``) do not apply to them.

Every kernel takes finite inputs of one dtype and device whose differences and sums of squares
cannot overflow (the projections rescale them first) and returns ``(N, K)``. Memory is
``O(N K)`` plus one working block; no ``N x K x D`` temporary (on a GPU, the cdist fallback's
backward needs one per row block of at most 256 MiB).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["GUARD", "euclidean", "l1", "linf", "numba_available", "use_numba"]

#: Entries of the euclidean expansion with ``d^2 < GUARD * (|z_c|^2 + |a_c|^2)`` are
#: recomputed from direct differences (a power of two: 1/32).
GUARD = 2.0**-5

# Anchors per register tile of the L-infinity kernel.
_LINF_TILE = 128

# Bytes of the N x K x D backward buffer of torch.cdist per row block on a GPU (256 MiB).
_CDIST_BLOCK = 1 << 28

# Pairs recomputed per block by the euclidean guard (times D elements of working memory).
_GUARD_BLOCK = 1 << 22


# -- euclidean --------------------------------------------------------------------------------


def _squared_norms(t: Tensor) -> Tensor:
    return (t * t).sum(dim=1)


def _euclidean_forward(x: Tensor, anchors: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(d, x_c, a_c, close)``: the distances, the centred inputs and the ``(M, 2)`` indices
    of the entries recomputed from direct differences."""
    centre = anchors.mean(dim=0, keepdim=True)
    x_c, a_c = x - centre, anchors - centre
    nx, na = _squared_norms(x_c), _squared_norms(a_c)
    scale = nx[:, None] + na[None, :]
    d2 = torch.addmm(scale, x_c, a_c.T, beta=1.0, alpha=-2.0)
    close = torch.nonzero(d2 < GUARD * scale)
    if close.numel():
        rows, cols = close[:, 0], close[:, 1]
        exact = torch.cat(
            [_squared_norms(x[r] - anchors[c]) for r, c in _blocks(rows, cols, x.shape[1])]
        )
        d2[rows, cols] = exact
    return d2.clamp_min_(0.0).sqrt_(), x_c, a_c, close


def _blocks(rows: Tensor, cols: Tensor, dim: int) -> list[tuple[Tensor, Tensor]]:
    """``(rows, cols)`` in blocks of at most :data:`_GUARD_BLOCK` elements of ``dim`` each."""
    step = max(1, _GUARD_BLOCK // max(1, dim))
    return [(rows[s : s + step], cols[s : s + step]) for s in range(0, rows.numel(), step)]


class _Euclidean(torch.autograd.Function):
    # Autocast is turned off inside: the expansion needs the inputs' precision (in half
    # precision it would lose most digits and its squared norms could overflow).
    @staticmethod
    def forward(ctx: Any, x: Tensor, anchors: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            d, x_c, a_c, close = _euclidean_forward(x, anchors)
        ctx.save_for_backward(d, x_c, a_c, close, x, anchors)
        return d

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        d, x_c, a_c, close, x, anchors = ctx.saved_tensors
        with torch.autocast(grad.device.type, enabled=False):
            return _euclidean_backward(ctx.needs_input_grad, grad.to(d.dtype), d, x_c, a_c,
                                       close, x, anchors)  # fmt: skip


def _euclidean_backward(
    needs: tuple[bool, ...],
    grad: Tensor,
    d: Tensor,
    x_c: Tensor,
    a_c: Tensor,
    close: Tensor,
    x: Tensor,
    anchors: Tensor,
) -> tuple[Tensor | None, Tensor | None]:
    """``dd_ij / dz_i = (z_i - a_j) / d_ij`` (0 where ``d_ij = 0``), as matrix products, except
    on the guarded entries, whose differences are taken directly (the products would cancel
    the digits the forward kept)."""
    w = torch.where(d > 0, grad / torch.where(d > 0, d, torch.ones_like(d)), 0.0)
    direct: list[tuple[Tensor, Tensor, Tensor]] = []
    if close.numel():
        rows, cols = close[:, 0], close[:, 1]
        direct = [(r, c, w[r, c]) for r, c in _blocks(rows, cols, x.shape[1])]
        w[rows, cols] = 0.0
    gx = ga = None
    if needs[0]:
        gx = x_c * w.sum(dim=1, keepdim=True) - w @ a_c
        for r, c, weight in direct:
            gx.index_add_(0, r, weight[:, None] * (x[r] - anchors[c]))
    if needs[1]:
        ga = a_c * w.sum(dim=0)[:, None] - w.T @ x_c
        for r, c, weight in direct:
            ga.index_add_(0, c, weight[:, None] * (anchors[c] - x[r]))
    return gx, ga


def euclidean(x: Tensor, anchors: Tensor) -> Tensor:
    """Euclidean distances ``(N, K)`` by the guarded matrix-product expansion."""
    if x.shape[0] == 0 or anchors.shape[0] == 0:
        return x.new_zeros((x.shape[0], anchors.shape[0])) + 0.0 * x.sum() + 0.0 * anchors.sum()
    out: Tensor = _Euclidean.apply(x, anchors)
    return out


# -- L1 and L-infinity ------------------------------------------------------------------------

_COMPILED: dict[str, Callable[..., None]] = {}
# Whether the compiled kernels work here (None: not tried yet), whether this process ran them
# (a child forked after that does not: a thread pool does not survive a fork), and a lock
# that serialises the calls (numba's workqueue pool is not thread-safe).
_STATE: dict[str, bool | None] = {"ready": None, "used": False, "forked": False}
_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    if _STATE["used"]:
        _STATE["forked"] = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def numba_available() -> bool:
    """Whether numba is installed (the compiled L1 and L-infinity kernels can run)."""
    return importlib.util.find_spec("numba") is not None


def _ready() -> bool:
    """Whether the compiled kernels work in this process: numba imports and compiles (once;
    on failure a warning says why and ``torch.cdist`` serves from then on), and this is not a
    child forked from a process that ran them."""
    if _STATE["forked"]:
        return False
    if _STATE["ready"] is None:
        try:
            import numpy as np

            kernels = _compile()
            probe = np.zeros((4, 2), dtype=np.float32)
            with _LOCK:
                kernels["l1_forward"](probe, probe, np.empty((4, 4), np.float32))
            _STATE["ready"] = True
        except Exception as error:  # a broken install or no cache location: fall back
            warnings.warn(
                f"the compiled L1/L-infinity kernels are unavailable ({type(error).__name__}: "
                f"{error}); torch.cdist computes them instead",
                RuntimeWarning,
                stacklevel=3,
            )
            _STATE["ready"] = False
    return bool(_STATE["ready"])


def use_numba(t: Tensor) -> bool:
    """Whether the compiled kernels serve ``t``: a CPU tensor of float32 or float64,
    ``LATENTBRIDGE_KERNELS`` not set to ``torch``, and numba installed and working here."""
    return (
        t.device.type == "cpu"
        and t.dtype in (torch.float32, torch.float64)
        and os.environ.get("LATENTBRIDGE_KERNELS", "auto") != "torch"
        and numba_available()
        and _ready()
    )


def _run(name: str, *args: Any) -> None:
    """Call the compiled kernel ``name`` with as many threads as torch uses, one call at a
    time."""
    import numba

    kernel = _compile()[name]
    limit = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    threads = max(1, min(torch.get_num_threads(), limit))
    with _LOCK:
        numba.set_num_threads(threads)
        _STATE["used"] = True
        kernel(*args)


def _compile() -> dict[str, Callable[..., None]]:
    """The numba kernels, compiled once per process (and cached on disk by numba)."""
    if _COMPILED:
        return _COMPILED
    import numba as nb
    import numpy as np

    if "NUMBA_THREADING_LAYER" not in os.environ:
        # numba's own thread pool, not OpenMP: once numba's OpenMP layer has started, torch's
        # LAPACK rounds differently in the same process (an orthogonal map fitted with fewer
        # anchors than dimensions came out different after one L1 call), so results would
        # depend on which projections ran before. The pool is not thread-safe: _LOCK
        # serialises the calls.
        nb.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]

    # Reassociation lets the compiler vectorise the reductions; inputs are finite.
    fast = {"reassoc", "contract", "nsz", "nnan", "ninf"}
    opts: dict[str, Any] = {"parallel": True, "fastmath": fast, "cache": True, "nogil": True}
    tile_i, tile_j = 4, 64

    @nb.njit(**opts)
    def l1_forward(x: Any, a: Any, out: Any) -> None:
        n, dim = x.shape
        k = a.shape[0]
        for ib in nb.prange((n + tile_i - 1) // tile_i):
            i0 = ib * tile_i
            i1 = min(n, i0 + tile_i)
            for j0 in range(0, k, tile_j):
                for j in range(j0, min(k, j0 + tile_j)):
                    aj = a[j]
                    if i1 - i0 == 4:
                        x0, x1, x2, x3 = x[i0], x[i0 + 1], x[i0 + 2], x[i0 + 3]
                        s0 = s1 = s2 = s3 = x.dtype.type(0)
                        for c in range(dim):
                            v = aj[c]
                            s0 += abs(x0[c] - v)
                            s1 += abs(x1[c] - v)
                            s2 += abs(x2[c] - v)
                            s3 += abs(x3[c] - v)
                        out[i0, j] = s0
                        out[i0 + 1, j] = s1
                        out[i0 + 2, j] = s2
                        out[i0 + 3, j] = s3
                    else:
                        for i in range(i0, i1):
                            xi = x[i]
                            s = x.dtype.type(0)
                            for c in range(dim):
                                s += abs(xi[c] - aj[c])
                            out[i, j] = s

    # L-infinity's max does not vectorise as a reduction over D; instead each thread keeps the
    # running maxima of a 4-row x 128-anchor tile (in registers) and sweeps D once, reading
    # the anchors transposed. Rows come in multiples of 4 and the anchors padded to whole
    # tiles (the padding columns are computed and not written).
    @nb.njit(**opts)
    def linf_forward(x: Any, a_t: Any, k: int, out: Any) -> None:
        n, dim = x.shape
        padded = a_t.shape[1]
        for ib in nb.prange(n // 4):
            i0 = ib * 4
            for j0 in range(0, padded, _LINF_TILE):
                m0 = np.zeros(_LINF_TILE, x.dtype)
                m1 = np.zeros(_LINF_TILE, x.dtype)
                m2 = np.zeros(_LINF_TILE, x.dtype)
                m3 = np.zeros(_LINF_TILE, x.dtype)
                for c in range(dim):
                    v0, v1, v2, v3 = x[i0, c], x[i0 + 1, c], x[i0 + 2, c], x[i0 + 3, c]
                    row = a_t[c, j0 : j0 + _LINF_TILE]
                    for jj in range(_LINF_TILE):
                        t = row[jj]
                        d0, d1, d2, d3 = abs(v0 - t), abs(v1 - t), abs(v2 - t), abs(v3 - t)
                        m0[jj] = d0 if d0 > m0[jj] else m0[jj]
                        m1[jj] = d1 if d1 > m1[jj] else m1[jj]
                        m2[jj] = d2 if d2 > m2[jj] else m2[jj]
                        m3[jj] = d3 if d3 > m3[jj] else m3[jj]
                w = min(_LINF_TILE, k - j0)
                out[i0, j0 : j0 + w] = m0[:w]
                out[i0 + 1, j0 : j0 + w] = m1[:w]
                out[i0 + 2, j0 : j0 + w] = m2[:w]
                out[i0 + 3, j0 : j0 + w] = m3[:w]

    # Backward: gu[r, c] = sum_s g[r, s] * w(u[r, c] - v[s, c]) for the rows r of u against the
    # rows s of v, with w = sign (L1) or sign where |u - v| reaches the distance d[r, s]
    # (L-infinity). Called with (x, anchors^T, g, d) for dx and (anchors, x^T, g^T, d^T) for
    # d anchors; the sum over s runs along contiguous rows of v^T, g and d (vectorised), one
    # thread per output row.
    @nb.njit(**opts)
    def l1_backward(u: Any, v_t: Any, g: Any, d: Any, out: Any) -> None:
        n, dim = u.shape
        k = v_t.shape[1]
        for r in nb.prange(n):
            gr = g[r]
            for c in range(dim):
                value = u[r, c]
                vc = v_t[c]
                acc = u.dtype.type(0)
                for s in range(k):
                    acc += gr[s] * np.sign(value - vc[s])
                out[r, c] = acc

    @nb.njit(**opts)
    def linf_backward(u: Any, v_t: Any, g: Any, d: Any, out: Any) -> None:
        n, dim = u.shape
        k = v_t.shape[1]
        for r in nb.prange(n):
            gr = g[r]
            dr = d[r]
            for c in range(dim):
                value = u[r, c]
                vc = v_t[c]
                acc = u.dtype.type(0)
                for s in range(k):
                    diff = value - vc[s]
                    acc += gr[s] * np.sign(diff) * (abs(diff) == dr[s])
                out[r, c] = acc

    _COMPILED.update(
        l1_forward=l1_forward,
        linf_forward=linf_forward,
        l1_backward=l1_backward,
        linf_backward=linf_backward,
    )
    return _COMPILED


def _numpy(t: Tensor) -> Any:
    return t.detach().contiguous().numpy()


class _Compiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, anchors: Tensor, kind: str) -> Tensor:
        out = torch.empty((x.shape[0], anchors.shape[0]), dtype=x.dtype)
        (_linf_forward if kind == "linf" else _l1_forward)(_numpy(x), _numpy(anchors), out)
        ctx.kind = kind
        ctx.save_for_backward(x, anchors, out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        x, anchors, d = ctx.saved_tensors
        kernel = f"{ctx.kind}_backward"
        g = grad.to(x.dtype)
        gx = ga = None
        if ctx.needs_input_grad[0]:
            gx = torch.empty_like(x)
            _run(kernel, _numpy(x), _numpy(anchors.T), _numpy(g), _numpy(d), gx.numpy())
        if ctx.needs_input_grad[1]:
            ga = torch.empty_like(anchors)
            _run(kernel, _numpy(anchors), _numpy(x.T), _numpy(g.T), _numpy(d.T), ga.numpy())
        return gx, ga, None


def _l1_forward(x: Any, anchors: Any, out: Tensor) -> None:
    _run("l1_forward", x, anchors, out.numpy())


def _linf_forward(x: Any, anchors: Any, out: Tensor) -> None:
    """The tiled kernel on the rows in multiples of 4, then the (up to 3) last rows padded."""
    import numpy as np

    k, dim = anchors.shape
    padded = -(-k // _LINF_TILE) * _LINF_TILE
    a_t = np.zeros((dim, padded), dtype=anchors.dtype)
    a_t[:, :k] = anchors.T
    n = x.shape[0]
    whole = n - n % 4
    result = out.numpy()
    if whole:
        _run("linf_forward", x[:whole], a_t, k, result[:whole])
    if whole < n:
        tail = np.zeros((4, dim), dtype=x.dtype)
        tail[: n - whole] = x[whole:]
        tail_out = np.empty((4, k), dtype=x.dtype)
        _run("linf_forward", tail, a_t, k, tail_out)
        result[whole:] = tail_out[: n - whole]


def _cdist(x: Tensor, anchors: Tensor, p: float) -> Tensor:
    """``torch.cdist``; on a GPU in row blocks, whose backward (an N x K x D buffer there)
    then needs at most :data:`_CDIST_BLOCK` bytes per block."""
    step = x.shape[0]
    if x.device.type != "cpu" and x.shape[0] and anchors.numel():
        step = max(1, _CDIST_BLOCK // (anchors.numel() * x.element_size()))
    if step >= x.shape[0]:
        return torch.cdist(x, anchors, p=p, compute_mode="donot_use_mm_for_euclid_dist")
    return torch.cat(
        [
            torch.cdist(x[i : i + step], anchors, p=p, compute_mode="donot_use_mm_for_euclid_dist")
            for i in range(0, x.shape[0], step)
        ]
    )


def l1(x: Tensor, anchors: Tensor) -> Tensor:
    """L1 distances ``(N, K)``: the compiled kernel where :func:`use_numba`, else cdist."""
    if not use_numba(x) or x.shape[0] == 0 or anchors.shape[0] == 0:
        return _cdist(x, anchors, 1.0)
    out: Tensor = _Compiled.apply(x, anchors, "l1")
    return out


def linf(x: Tensor, anchors: Tensor) -> Tensor:
    """L-infinity distances ``(N, K)``: the compiled kernel where :func:`use_numba`, else
    cdist."""
    if not use_numba(x) or x.shape[0] == 0 or anchors.shape[0] == 0:
        return _cdist(x, anchors, float("inf"))
    out: Tensor = _Compiled.apply(x, anchors, "linf")
    return out
