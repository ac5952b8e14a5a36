"""Benchmark latentbridge.metrics against naive N x N Gram-matrix implementations.

Measures linear CKA (``method="auto"``) and cross-space retrieval on seeded random float32
data, ``y = 0.15 x + noise`` (related but not trivially so), at several N and one D, and
compares each with a naive numpy implementation measured in the same run:

- naive linear CKA: Kornblith et al.'s reference code path — ``K = X X^T``, ``L = Y Y^T``,
  centred copies of both, ``HSIC = <Kc, Lc>_F`` — in float64 (about 4 N^2 float64 matrices);
- naive retrieval: the full N x N cosine similarity matrix in float64, the pessimistic rank
  of the diagonal read off each row.

Every case runs in a fresh subprocess. Its peak memory is the child's peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) minus the RSS of the same interpreter right
after it imported everything, generated the data and warmed up (so the inputs themselves are
not counted). A naive case whose N x N float64 matrices would exceed ``--budget-gib`` is not
run and is reported as "skipped (needs X GiB)". Times are the best of up to ``--repeat`` runs
(repetition stops early once a case has used ``--max-seconds``).

Run ``.venv/bin/python benchmarks/bench_metrics.py`` (defaults: N in 1e3, 1e4, 1e5, D = 768;
the N = 1e5 retrieval alone takes several minutes on two cores) or, quicker,
``.venv/bin/python benchmarks/bench_metrics.py --sizes 1000 10000``. ``--json PATH`` also
writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GIB = 1 << 30
MEASURES = ("linear_cka", "retrieval")
IMPLEMENTATIONS = ("latentbridge", "naive")


def naive_bytes(measure: str, n: int, d: int) -> int:
    """Working memory of the naive implementation: its N x N float64 matrices (and inputs)."""
    matrices = 4 if measure == "linear_cka" else 1.2  # K, L, Kc, Lc; or S plus a boolean mask
    return int(matrices * 8 * n * n + 2 * 8 * n * d)


# --------------------------------------------------------------------------- the child


def make_data(n: int, d: int, seed: int) -> tuple[Any, Any]:
    """Seeded float32 ``x`` and ``y = 0.15 x + noise``, generated in place, chunk by chunk, so
    that generating them costs no more memory than holding them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = np.empty((n, d), dtype=np.float32)
    y = np.empty((n, d), dtype=np.float32)
    rng.standard_normal(out=x, dtype=np.float32)
    rng.standard_normal(out=y, dtype=np.float32)
    step = 4096
    for start in range(0, n, step):
        y[start : start + step] += 0.15 * x[start : start + step]
    return x, y


def naive_linear_cka(x: Any, y: Any) -> float:
    import numpy as np

    def centre_gram(gram: Any) -> Any:
        gram = gram.copy()
        means = gram.mean(axis=0)
        means -= means.mean() / 2
        gram -= means[:, None]
        gram -= means[None, :]
        return gram

    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    kc = centre_gram(x64 @ x64.T)
    lc = centre_gram(y64 @ y64.T)
    hsic = kc.ravel() @ lc.ravel()
    return float(hsic / (np.linalg.norm(kc) * np.linalg.norm(lc)))


def naive_retrieval(x: Any, y: Any) -> dict[str, float]:
    import numpy as np

    xu = x.astype(np.float64)
    xu /= np.linalg.norm(xu, axis=1, keepdims=True)
    yu = y.astype(np.float64)
    yu /= np.linalg.norm(yu, axis=1, keepdims=True)
    sim = xu @ yu.T
    own = np.diagonal(sim).copy()
    ranks = (sim >= own[:, None]).sum(axis=1)  # counts j = i itself: pessimistic rank
    return {
        "mrr": float((1.0 / ranks).mean()),
        "top1": float((ranks <= 1).mean()),
        "top5": float((ranks <= 5).mean()),
    }


def run_child(
    measure: str, impl: str, n: int, d: int, seed: int, repeat: int, budget: float
) -> None:
    import dataclasses

    import numpy as np
    import torch

    from latentbridge import metrics

    if impl == "latentbridge":
        fn = metrics.linear_cka if measure == "linear_cka" else metrics.retrieval
    else:
        fn = naive_linear_cka if measure == "linear_cka" else naive_retrieval
    # Warm up the libraries (thread pools, BLAS buffers) on tiny inputs before the baseline.
    small_x, small_y = make_data(64, 8, seed)
    fn(small_x, small_y)
    torch.ones(8, 8, dtype=torch.float64) @ torch.ones(8, 8, dtype=torch.float64)
    np.ones((8, 8)) @ np.ones((8, 8))
    x, y = make_data(n, d, seed)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times: list[float] = []
    result: Any = None
    while len(times) < repeat and (not times or sum(times) < budget):
        start = time.perf_counter()
        result = fn(x, y)
        times.append(time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    method = ""
    if measure == "linear_cka":
        method = metrics._auto_cka_method(n, d, d) if impl == "latentbridge" else "gram"
    print(
        json.dumps(
            {
                "seconds": min(times),
                "runs": len(times),
                "peak_mib": max(peak_kib - baseline_kib, 0) / 1024,
                "value": result,
                "method": method,
            }
        )
    )


# --------------------------------------------------------------------------- the parent


def measure_case(args: argparse.Namespace, measure: str, impl: str, n: int) -> dict[str, Any]:
    row: dict[str, Any] = {"n": n, "dim": args.dim, "measure": measure, "implementation": impl}
    if impl == "naive":
        need = naive_bytes(measure, n, args.dim)
        if need > args.budget_gib * GIB:
            row["skipped"] = f"skipped (needs {need / GIB:.0f} GiB)"
            return row
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        measure,
        impl,
        str(n),
        "--dim",
        str(args.dim),
        "--seed",
        str(args.seed),
        "--repeat",
        str(args.repeat),
        "--max-seconds",
        str(args.max_seconds),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        row["skipped"] = f"failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"
        return row
    row.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return row


def format_value(value: Any) -> str:
    if isinstance(value, dict):
        return f"mrr={value['mrr']:.4f} top1={value['top1']:.4f} top5={value['top5']:.4f}"
    return f"{value:.6f}" if isinstance(value, float) else ""


def markdown(rows: list[dict[str, Any]]) -> str:
    header = (
        "| N | measure | implementation | seconds | peak MiB | time / naive | peak / naive "
        "| value |\n|---:|---|---|---:|---:|---:|---:|---|"
    )
    naive = {(r["n"], r["measure"]): r for r in rows if r["implementation"] == "naive"}
    lines = [header]
    for r in rows:
        impl = r["implementation"] + (f" ({r['method']})" if r.get("method") else "")
        if "skipped" in r:
            lines.append(f"| {r['n']} | {r['measure']} | {impl} | {r['skipped']} | | | | |")
            continue
        base = naive.get((r["n"], r["measure"]), {})
        if "seconds" in base and r["implementation"] != "naive":
            t_ratio = f"{r['seconds'] / base['seconds']:.2f}x"
            m_ratio = f"{r['peak_mib'] / max(base['peak_mib'], 1e-9):.3f}x"
        elif r["implementation"] == "naive":
            t_ratio = m_ratio = "1x"
        else:
            t_ratio = m_ratio = "n/a"
        lines.append(
            f"| {r['n']} | {r['measure']} | {impl} | {r['seconds']:.3f} | {r['peak_mib']:.1f} "
            f"| {t_ratio} | {m_ratio} | {format_value(r['value'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--repeat", type=int, default=3, help="at most this many timed runs")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="stop repeating a case once its runs have taken this long (at least one run)",
    )
    parser.add_argument("--budget-gib", type=float, default=8.0, help="naive N x N memory cap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--child", nargs=3, metavar=("MEASURE", "IMPL", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        measure, impl, n = args.child
        run_child(measure, impl, int(n), args.dim, args.seed, args.repeat, args.max_seconds)
        return 0
    rows = []
    for n in args.sizes:
        for measure in MEASURES:
            for impl in IMPLEMENTATIONS:
                print(f"... N={n} {measure} {impl}", file=sys.stderr, flush=True)
                rows.append(measure_case(args, measure, impl, n))
    print(f"D = {args.dim}, float32 inputs, seed {args.seed}; best of <= {args.repeat} runs\n")
    print(markdown(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
