"""Benchmark latentbridge.streaming.project_file: throughput and peak memory on a large file.

Generates (or reuses, in ``--dir``) seeded ``--rows`` x ``--dim`` float32 latents in a ``.npy``
file, written chunk by chunk with plain file writes (never held in memory whole, and never
mapped, so generating them leaves no resident pages behind), and ``--anchors`` distinct anchor
indices, then projects the file with ``project_file`` (cosine by default; ``--projection`` is
repeatable, for the product's subspaces side by side) to ``--dtype`` (float16 by default) and
prints:

- the throughput, rows per second of the ``project_file`` call (wall clock; the input was just
  written, so it is read from the page cache, and the output is flushed to disk after every
  chunk, as ``project_file`` always does);
- peak memory: ``ru_maxrss`` of the process (its whole life, generation included), ``VmHWM``
  (the peak resident set, reset through ``/proc/self/clear_refs`` just before the projection
  where the kernel allows it), and the peak of ``RssAnon`` -- anonymous resident memory, which
  does not count the file-backed pages of the memory maps -- sampled every 50 ms by a
  background thread during the projection, next to its value just before;
- the sizes of the input and output files.

Run ``.venv/bin/python benchmarks/bench_streaming.py`` (1,000,000 x 768 float32 latents:
2.9 GiB, and 2.4 GiB of float16 output with 1,280 anchors; in a temporary folder deleted at the
end) or, quicker, ``--rows 20000``. With ``--dir`` the latents and indices are kept there and
reused by the next run with the same sizes and seed; the output is deleted unless
``--keep-output``. :func:`run` does the same from Python and returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20
GENERATE_ROWS = 16384  # rows generated and written at a time


def _status() -> dict[str, int]:
    """The ``kB`` fields of ``/proc/self/status`` in bytes (empty where there is none)."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                parts = value.split()
                if len(parts) == 2 and parts[1] == "kB":
                    fields[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return fields


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current resident set (Linux >= 4.0); whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


class MemorySampler(threading.Thread):
    """Samples ``RssAnon`` and ``VmRSS`` every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_anon = 0
        self.peak_rss = 0
        self.samples = 0
        self._done = threading.Event()

    def sample(self) -> None:
        status = _status()
        self.peak_anon = max(self.peak_anon, status.get("RssAnon", 0))
        self.peak_rss = max(self.peak_rss, status.get("VmRSS", 0))
        self.samples += 1

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()


def _has_latents(path: Path, rows: int, dim: int) -> bool:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return array.shape == (rows, dim) and array.dtype == np.float32


def make_latents(path: Path, rows: int, dim: int, seed: int = 0) -> Path:
    """Write seeded standard-normal float32 latents ``(rows, dim)`` to the ``.npy`` ``path``,
    ``GENERATE_ROWS`` rows at a time (a temporary name, renamed at the end)."""
    tmp = path.with_name(path.name + ".generating")
    header = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
    offset = header.offset
    del header  # only its header is used: the data is written with plain writes
    rng = np.random.default_rng(seed)
    with tmp.open("r+b") as handle:
        handle.seek(offset)
        for start in range(0, rows, GENERATE_ROWS):
            block = rng.standard_normal((min(GENERATE_ROWS, rows - start), dim), np.float32)
            handle.write(block.tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def run(
    rows: int = 1_000_000,
    dim: int = 768,
    num_anchors: int = 1280,
    *,
    projections: Sequence[str] = ("cosine",),
    dtype: str = "float16",
    chunk_size: int | None = None,
    folder: str | os.PathLike[str] | None = None,
    keep_output: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate (or reuse) the latents and indices in ``folder``, project them, measure.

    ``folder=None`` works in a temporary folder, deleted at the end (so ``keep_output`` needs a
    ``folder``). Returns the figures: ``rows_per_s``, ``elapsed_s``, ``peak_rss_anon_bytes``
    (during the projection), ``rss_anon_before_bytes``, ``vm_hwm_bytes`` (reset before the
    projection when ``vm_hwm_reset``), ``ru_maxrss_bytes``, the file sizes and paths.
    """
    from latentbridge.streaming import default_chunk_size, partial_paths, project_file

    if keep_output and folder is None:
        raise ValueError("keep_output needs a folder")
    work = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="lb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        latents = work / f"latents-{rows}x{dim}-seed{seed}.npy"
        generated = False
        if not _has_latents(latents, rows, dim):
            start = time.perf_counter()
            make_latents(latents, rows, dim, seed)
            generated = True
            generate_s = time.perf_counter() - start
        indices = work / f"anchor-indices-{num_anchors}-of-{rows}-seed{seed}.npy"
        rng = np.random.default_rng(seed + 1)
        np.save(indices, np.sort(rng.choice(rows, num_anchors, replace=False)))
        out = work / f"relative-{'+'.join(projections)}-{dtype}.npy"
        for path in (out, *partial_paths(out)):
            if path.exists():
                path.unlink()
        itemsize = np.dtype(dtype).itemsize
        chosen = chunk_size or default_chunk_size(
            dim, num_anchors, len(projections), out_itemsize=itemsize
        )

        reset = _reset_peak_rss()
        before = _status()
        sampler = MemorySampler()
        sampler.start()
        start = time.perf_counter()
        try:
            project_file(
                latents,
                out,
                anchor_indices=indices,
                projections=tuple(projections),
                dtype=dtype,
                chunk_size=chunk_size,
                progress=progress,
            )
        finally:
            elapsed = time.perf_counter() - start
            sampler.stop()
        after = _status()
        result: dict[str, Any] = {
            "rows": rows,
            "dim": dim,
            "num_anchors": num_anchors,
            "projections": list(projections),
            "dtype": dtype,
            "chunk_size": chosen,
            "elapsed_s": elapsed,
            "rows_per_s": rows / elapsed if elapsed > 0 else float("inf"),
            "rss_anon_before_bytes": before.get("RssAnon", 0),
            "peak_rss_anon_bytes": sampler.peak_anon,
            "peak_vm_rss_sampled_bytes": sampler.peak_rss,
            "vm_rss_before_bytes": before.get("VmRSS", 0),
            "vm_hwm_bytes": after.get("VmHWM", 0),
            "vm_hwm_reset": reset,
            "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "memory_samples": sampler.samples,
            "latents_bytes": latents.stat().st_size,
            "out_bytes": out.stat().st_size,
            "latents_generated": generated,
            "generate_s": generate_s if generated else None,
            "torch_threads": _torch_threads(),
            "latents": str(latents),
            "indices": str(indices),
            "out": str(out),
        }
        if not keep_output:
            out.unlink()
        return result
    finally:
        if folder is None:
            shutil.rmtree(work, ignore_errors=True)


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _mib(value: int) -> str:
    return f"{value / MIB:,.1f} MiB"


def report(result: dict[str, Any]) -> str:
    """The figures of :func:`run` as lines of text."""
    hwm = "VmHWM (reset before the projection)" if result["vm_hwm_reset"] else "VmHWM"
    generated = (
        f"generated in {result['generate_s']:.1f} s" if result["latents_generated"] else "reused"
    )
    return "\n".join(
        [
            f"latents: {result['rows']:,} x {result['dim']} float32, "
            f"{_mib(result['latents_bytes'])} ({generated}): {result['latents']}",
            f"anchors: {result['num_anchors']:,} indices; projections: "
            f"{' + '.join(result['projections'])} -> {result['dtype']}, chunk size "
            f"{result['chunk_size']:,} rows, {result['torch_threads']} torch thread(s)",
            f"output: {result['rows']:,} x {result['num_anchors'] * len(result['projections']):,} "
            f"{result['dtype']}, {_mib(result['out_bytes'])}",
            f"elapsed: {result['elapsed_s']:.2f} s, throughput: {result['rows_per_s']:,.0f} rows/s",
            f"peak RssAnon during the projection: {_mib(result['peak_rss_anon_bytes'])} "
            f"(before: {_mib(result['rss_anon_before_bytes'])}; "
            f"{result['memory_samples']} samples every 50 ms)",
            f"peak VmRSS sampled: {_mib(result['peak_vm_rss_sampled_bytes'])} "
            f"(before: {_mib(result['vm_rss_before_bytes'])}); "
            f"{hwm}: {_mib(result['vm_hwm_bytes'])}; "
            f"ru_maxrss (whole process): {_mib(result['ru_maxrss_bytes'])}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--anchors", type=int, default=1280, help="number of anchor indices")
    parser.add_argument(
        "--projection", action="append", default=None, help="repeatable (default: cosine)"
    )
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32", "float64"])
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--dir", default=None, help="keep and reuse the inputs here")
    parser.add_argument("--keep-output", action="store_true", help="keep the output (with --dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="draw the progress bar")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures")
    args = parser.parse_args(argv)
    result = run(
        args.rows,
        args.dim,
        args.anchors,
        projections=tuple(args.projection or ("cosine",)),
        dtype=args.dtype,
        chunk_size=args.chunk_size,
        folder=args.dir,
        keep_output=args.keep_output,
        seed=args.seed,
        progress=args.progress,
    )
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
