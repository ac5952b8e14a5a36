"""`latentbridge run --executor ray`: a real local Ray instance, the same bytes as a local run.

One Ray instance (2 CPUs, on this machine) serves the module and is stopped at the end. The
failure tests wrap a cell's computation in a callable of this module, which Ray pickles by
value, so that it runs in the worker: it fails the first time (a flag file says whether it
did) and computes the cell the next time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from latentbridge.cli import main
from latentbridge.experiments import runner
from latentbridge.experiments.config import parse_config
from latentbridge.experiments.task import Cell, Plan
from latentbridge.experiments.tasks import classification

from .test_cli_errors import _fails
from .test_config import TINY

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

CONFIG = parse_config(
    {**TINY, "seeds": [0, 1], "variants": {**TINY["variants"], "selection": True}}
)


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Iterator[None]:
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def local_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("local") / "run"
    return runner.run(CONFIG, out, progress=False, report=False).read_bytes()


def _ray(out: Path, config: Any = None, **options: Any) -> Path:
    return runner.run(
        config or CONFIG, out, progress=False, report=False, executor="ray", max_parallel=2,
        **options,
    )  # fmt: skip


def test_ray_gives_the_bytes_of_a_local_run(tmp_path: Path, local_bytes: bytes) -> None:
    assert _ray(tmp_path / "run").read_bytes() == local_bytes


class _FailOnce:
    """A cell's computation that fails once (raises, or ends its worker process)."""

    def __init__(self, compute: Any, flag: Path, how: str) -> None:
        self.compute, self.flag, self.how = compute, flag, how

    def __call__(self) -> Any:
        if not self.flag.exists():
            self.flag.write_text("failed once")
            if self.how == "exit":
                os._exit(1)  # the worker dies: Ray retries the task elsewhere
            raise RuntimeError("injected failure")
        return self.compute()


def _wrap_first(monkeypatch: pytest.MonkeyPatch, wrap: Any, last: bool = False) -> None:
    """Wrap the computation of the plan's first cell (or its last trained one)."""
    real = classification.Classification.plan

    def plan(self: Any, dataset: Any, config: Any, context: Any) -> Plan:
        result = real(self, dataset, config, context)
        i = max(j for j, c in enumerate(result.cells) if c.stage == 0) if last else 0
        cell = result.cells[i]
        result.cells[i] = Cell(cell.dataset, cell.variant, cell.seed, cell.source,
                               wrap(cell.compute), cell.batch, cell.stage)  # fmt: skip
        return result

    monkeypatch.setattr(classification.Classification, "plan", plan)


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_a_failed_task_is_retried_and_the_results_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_bytes: bytes, how: str
) -> None:
    flag = tmp_path / "failed"
    _wrap_first(monkeypatch, lambda compute: _FailOnce(compute, flag, how))
    assert _ray(tmp_path / "run").read_bytes() == local_bytes
    assert flag.read_text() == "failed once"


class _AlwaysFails:
    def __init__(self, compute: Any) -> None:
        self.compute = compute

    def __call__(self) -> Any:
        raise RuntimeError("this cell always fails")


def test_each_executor_resumes_the_others_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_bytes: bytes
) -> None:
    # ray, interrupted (the last batch fails for good, after others finished), then local
    out = tmp_path / "ray-then-local"
    with monkeypatch.context() as patch:
        _wrap_first(patch, _AlwaysFails, last=True)
        with pytest.raises(Exception, match="this cell always fails"):
            _ray(out)
    finished = len(list((out / "cells").glob("*.csv")))
    assert 0 < finished < 2 * 3 * 6  # some cells were written, not all
    assert runner.run(CONFIG, out, progress=False, report=False).read_bytes() == local_bytes
    # local, interrupted, then ray finishes
    out = tmp_path / "local-then-ray"
    real = classification._cell_rows
    calls: list[object] = []

    def interrupted(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args)

    with monkeypatch.context() as patch:
        patch.setattr(classification, "_cell_rows", interrupted)
        with pytest.raises(KeyboardInterrupt):
            runner.run(CONFIG, out, progress=False, report=False)
    assert _ray(out).read_bytes() == local_bytes


def test_the_command_line_takes_the_executor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_bytes: bytes
) -> None:
    config = tmp_path / "tiny.yaml"
    import yaml

    variants = {**TINY["variants"], "selection": True}
    config.write_text(yaml.safe_dump({**TINY, "seeds": [0, 1], "variants": variants}))
    out = tmp_path / "run"
    argv = ["run", str(config), "--out", str(out), "--quiet", "--executor", "ray"]
    assert main([*argv, "--max-parallel", "2"]) == 0
    assert (out / "results.csv").read_bytes() == local_bytes
    line = _fails(capsys, [*argv, "--max-parallel", "0"])
    assert "--max-parallel" in line


def test_bad_executor_options_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executor must be one of"):
        runner.run(CONFIG, tmp_path / "a", executor="dask")
    with pytest.raises(ValueError, match="max_parallel must be an integer >= 1"):
        runner.run(CONFIG, tmp_path / "b", executor="ray", max_parallel=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_without_ray_the_executor_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(ValueError, match=r"latentbridge\[ray\]"):
        runner.run(replace(CONFIG), tmp_path / "run", executor="ray")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("task", ["reconstruction", "graph", "similarity"])
def test_every_task_gives_the_local_bytes_on_ray(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latentbridge.experiments.config import load_config

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))  # trained encoders
    config = load_config(Path(__file__).parent / "data" / "regression" / f"{task}.yaml")
    local = runner.run(config, tmp_path / "local", progress=False, report=False)
    on_ray = runner.run(config, tmp_path / "ray", progress=False, report=False,
                        executor="ray", max_parallel=2)  # fmt: skip
    assert on_ray.read_bytes() == local.read_bytes()


@pytest.mark.parametrize("encoder", ["glove-50d", "minilm-l3"])
def test_distributed_encoding_stores_the_bytes_of_a_local_one(encoder: str, tmp_path: Path) -> None:
    import numpy as np

    from latentbridge.cache import EmbeddingCache
    from latentbridge.encoding import encode

    options = {"num_classes": 3, "per_class": 30, "seed": 0}
    caches = {kind: EmbeddingCache(tmp_path / kind) for kind in ("local", "ray")}
    common = {"dataset_options": options, "chunk_size": 16, "progress": False}
    local = encode("wordnet", encoder, "train", cache=caches["local"], **common)
    on_ray = encode("wordnet", encoder, "train", cache=caches["ray"], executor="ray",
                    max_parallel=2, **common)  # fmt: skip
    assert np.array_equal(local, on_ray) and local.dtype == on_ray.dtype
    files = {kind: sorted(p.relative_to(tmp_path / kind) for p in (tmp_path / kind).rglob("*.npy"))
             for kind in caches}  # fmt: skip
    assert files["local"] == files["ray"] and files["local"]
    for name in files["local"]:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()


def test_distributed_encoding_through_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["encode", "--dataset", "wordnet", "--encoder", "glove-50d", "--option",
            "num_classes=2", "--option", "per_class=10", "--cache", str(tmp_path / "c"),
            "--quiet", "--executor", "ray", "--max-parallel", "2"]  # fmt: skip
    assert main(argv) == 0
    assert "glove-50d: 16 x 50 float32 latents" in capsys.readouterr().out


def test_a_ray_run_encodes_missing_latents_with_ray_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latentbridge import encoding
    from latentbridge.cache import EmbeddingCache

    config = parse_config(
        {
            "name": "text-tiny",
            "datasets": [
                {
                    "name": "wordnet",
                    "options": {"num_classes": 3, "per_class": 30, "seed": 0},
                    "encoders": ["glove-50d", "minilm-l3"],
                }
            ],
            "anchors": {"num": 16},
            "variants": {"projections": ["cosine"], "aggregations": []},
            "head": {"hidden": 8, "epochs": 1},
            "seeds": [0],
        }
    )
    local = runner.run(config, tmp_path / "local", cache=EmbeddingCache(tmp_path / "c1"),
                       progress=False, report=False)  # fmt: skip
    served: list[int] = []
    real = encoding._RayChunks.__call__

    def counting(self: Any, start: int, stop: int) -> Any:
        served.append(start)
        return real(self, start, stop)

    monkeypatch.setattr(encoding._RayChunks, "__call__", counting)
    on_ray = _ray(tmp_path / "ray", config, cache=EmbeddingCache(tmp_path / "c2"))
    assert on_ray.read_bytes() == local.read_bytes()
    assert len(served) == 4  # 2 encoders x 2 splits, one chunk each, encoded by Ray Data
