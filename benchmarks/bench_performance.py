"""Speed of the projections, of head training and of streaming projection, in one run.

Three parts, each against baselines measured in the same run on the same data:

1. **Projections** on seeded float32 data (default N = 10,000 samples, K = 1,280 anchors,
   D = 768): the time of each distance projection of the library (its registered function,
   i.e. the kernel and its rescaling check, no input validation) against ``torch.cdist`` on
   the same tensors (direct differences, the library's previous path; for euclidean also
   cdist's matrix-product mode, which loses digits far from the origin), against the cosine
   projection and against a bare GEMM ``x @ anchors.T`` of the same size; then forward +
   backward (gradients of both inputs of ``sum(projection)``) for the library and cdist; and
   the fixed part of the paper's product of four subspaces (:meth:`ProductProjection.relative`).
   Times are the best of ``--repeat`` runs after one warm-up (numba compiles in the warm-up).
2. **Head training**: ``--heads`` classification heads of the ``quick`` config's shape
   (LayerNorm -> Linear(256, 256) -> Tanh -> Linear(256, 10), 1,600 samples, 10 epochs of
   batch 64, Adam lr 1e-3; each head with its own seed and inputs) trained one at a time by
   the previous per-step loop (written out below: one model, ``torch.optim.Adam`` with its
   per-tensor implementation) and all at once by
   :func:`latentbridge.experiments.training.train_classifiers` (one stack, fused Adam), in
   heads (= cells) per second; the product's ``mlp_sum`` head (4 subspaces of 256) too.
3. **Streaming**: :func:`latentbridge.streaming.project_file` on a memory-mapped float32 file
   of ``--stream-rows`` x 768 onto 1,280 anchors (cosine, float16 out), rows per second and
   the peak anonymous resident memory (``benchmarks/bench_streaming.py`` runs the 1,000,000-row
   case).

Run ``make bench`` (``.venv/bin/python benchmarks/bench_performance.py``; about 2 minutes on two
cores) or with smaller sizes, e.g. ``--rows 2000 --heads 4 --stream-rows 20000``.
``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import latentbridge as lb
from latentbridge import _kernels
from latentbridge.experiments import training

HERE = Path(__file__).resolve().parent


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _best(fn: Callable[[], object], repeat: int, budget: float = 20.0) -> float:
    """Best wall time of ``fn`` over up to ``repeat`` runs after a warm-up (fewer once the
    runs have used ``budget`` seconds)."""
    fn()
    best, spent = float("inf"), 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget:
            break
    return best


def _cdist(p: float, mm: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    mode = "use_mm_for_euclid_dist" if mm else "donot_use_mm_for_euclid_dist"
    return lambda x, a: torch.cdist(x, a, p=p, compute_mode=mode)


def _forward_backward(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, a: torch.Tensor
) -> Callable[[], None]:
    xg, ag = x.clone().requires_grad_(), a.clone().requires_grad_()

    def run() -> None:
        xg.grad = ag.grad = None
        fn(xg, ag).sum().backward()

    return run


def projections(rows: int, anchors: int, dim: int, repeat: int) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, dim, generator=g)
    a = torch.randn(anchors, dim, generator=g)
    ours = {name: lb.projections.get(name).function for name in ("cosine", "euclidean", "l1")}
    ours["linf"] = lb.projections.get("linf").function
    cases: list[tuple[str, Callable[..., torch.Tensor], Callable[..., torch.Tensor] | None]] = [
        ("gemm x @ anchors.T", lambda x, a: x @ a.T, None),
        ("cosine", ours["cosine"], None),
        ("euclidean", ours["euclidean"], _cdist(2.0)),
        ("euclidean (cdist mm mode)", _cdist(2.0, mm=True), None),
        ("l1", ours["l1"], _cdist(1.0)),
        ("linf", ours["linf"], _cdist(float("inf"))),
    ]
    times = {}
    out = []
    for name, fn, baseline in cases:
        t = _best(lambda fn=fn: fn(x, a), repeat)
        times[name] = t
        row: dict[str, Any] = {"case": name, "forward_s": t}
        if baseline is not None:
            row["cdist_forward_s"] = _best(lambda b=baseline: b(x, a), repeat)
            row["fwd_bwd_s"] = _best(_forward_backward(fn, x, a), repeat)
            row["cdist_fwd_bwd_s"] = _best(_forward_backward(baseline, x, a), max(1, repeat // 2))
        elif name == "cosine":
            row["fwd_bwd_s"] = _best(_forward_backward(fn, x, a), repeat)
        out.append(row)
    product = lb.ProductProjection(lb.projections.PAPER_PRODUCT, num_anchors=anchors).fit(a)
    with torch.no_grad():
        t = _best(lambda: product.relative(x), repeat)
    out.append({"case": "product of 4 (fixed part)", "forward_s": t})
    cdist_product = sum(r.get("cdist_forward_s", 0.0) for r in out) + times["cosine"]
    out.append({"case": "product of 4 via cdist (sum)", "forward_s": cdist_product})
    for row in out:
        row["vs_cosine"] = row["forward_s"] / times["cosine"]
        row["vs_gemm"] = row["forward_s"] / times["gemm x @ anchors.T"]
        if "cdist_forward_s" in row:
            row["vs_cdist"] = row["forward_s"] / row["cdist_forward_s"]
    return out


def _per_step_loop(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int
) -> None:
    """The previous training loop: one model, per-tensor Adam, one step per mini-batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], 64):
            rows = order[start : start + 64]
            optimizer.zero_grad()
            loss_fn(model(x[rows]), y[rows]).backward()
            optimizer.step()
    model.eval()


def heads(count: int, samples: int = 1600, epochs: int = 10) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(1)
    n, k, classes = samples, 256, 10
    y = torch.randint(0, classes, (n,), generator=g)
    out = []
    for kind, shape in (("head on one subspace", (n, k)), ("mlp_sum product head", (n, 4, k))):
        xs = [torch.randn(*shape, generator=g) for _ in range(count)]

        def model(seed: int, kind: str = kind) -> nn.Module:
            with training.seeded(seed):
                if kind == "head on one subspace":
                    return training.make_head(k, classes, 256)
                agg = lb.aggregations.get("mlp_sum")(num_subspaces=4, num_anchors=k)
                return nn.Sequential(agg, training.make_head(agg.out_features, classes, 256))

        start = time.perf_counter()
        for s in range(count):
            _per_step_loop(model(s), xs[s], y, s, epochs)
        before = time.perf_counter() - start
        start = time.perf_counter()
        training.train_classifiers(
            [model(s) for s in range(count)],
            xs,
            y,
            epochs=epochs,
            generators=[torch.Generator().manual_seed(s) for s in range(count)],
        )
        after = time.perf_counter() - start
        out.append(
            {
                "case": kind,
                "heads": count,
                "per_step_heads_per_s": count / before,
                "stacked_heads_per_s": count / after,
                "speedup": before / after,
            }
        )
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _s(value: float | None) -> str:
    return "" if value is None else f"{value:.3f} s"


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--anchors", type=int, default=1_280)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-samples", type=int, default=1_600)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--stream-rows", type=int, default=200_000)
    parser.add_argument("--stream-anchors", type=int, default=1_280)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    today = datetime.date.today().isoformat()
    kernels = "numba" if _kernels.numba_available() else "torch.cdist (numba not installed)"
    print(
        f"# latentbridge performance, {today}\n\n{_cpu()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}, L1/L-infinity kernels: {kernels}\n"
    )
    proj = projections(args.rows, args.anchors, args.dim, args.repeat)
    print(f"## Projections: N = {args.rows:,}, K = {args.anchors:,}, D = {args.dim}, float32\n")
    print(
        _table(
            [
                "projection",
                "forward",
                "vs cosine",
                "vs GEMM",
                "torch.cdist",
                "vs cdist",
                "fwd+bwd",
                "cdist fwd+bwd",
            ],
            [
                [
                    r["case"],
                    _s(r["forward_s"]),
                    _x(r["vs_cosine"]),
                    _x(r["vs_gemm"]),
                    _s(r.get("cdist_forward_s")),
                    _x(r.get("vs_cdist")),
                    _s(r.get("fwd_bwd_s")),
                    _s(r.get("cdist_fwd_bwd_s")),
                ]
                for r in proj
            ],
        )
    )
    train = heads(args.heads, args.head_samples, args.head_epochs)
    print(
        f"\n## Head training: {args.heads} heads, {args.head_samples:,} samples, "
        f"{args.head_epochs} epochs of batch 64\n"
    )
    print(
        _table(
            ["heads", "per-step loop", "stacked", "speed-up"],
            [
                [
                    r["case"],
                    f"{r['per_step_heads_per_s']:.2f} heads/s",
                    f"{r['stacked_heads_per_s']:.2f} heads/s",
                    _x(r["speedup"]),
                ]
                for r in train
            ],
        )
    )
    # In a fresh process, so that its memory is its own (this one holds the tensors above).
    with tempfile.TemporaryDirectory() as folder:
        figures = Path(folder) / "streaming.json"
        subprocess.run(
            [
                sys.executable,
                str(HERE / "bench_streaming.py"),
                "--rows",
                str(args.stream_rows),
                "--anchors",
                str(args.stream_anchors),
                "--json",
                str(figures),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        stream = json.loads(figures.read_text())
    peak = (stream["peak_rss_anon_bytes"] - stream["rss_anon_before_bytes"]) / 2**20
    print(
        f"\n## Streaming: {args.stream_rows:,} x 768 float32 onto {args.stream_anchors:,} "
        "anchors (cosine, float16 out)\n"
    )
    print(
        _table(
            ["rows/s", "peak anonymous memory above the loaded library", "elapsed"],
            [[f"{stream['rows_per_s']:,.0f}", f"{peak:.0f} MiB", f"{stream['elapsed_s']:.1f} s"]],
        )
    )
    if args.json is not None:
        figures = {"date": today, "cpu": _cpu(), "projections": proj, "heads": train,
                   "streaming": stream}  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
