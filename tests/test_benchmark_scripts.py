"""The benchmark scripts whose numbers the README quotes, on a tiny run."""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from latentbridge.experiments import runner
from latentbridge.experiments.config import parse_config
from latentbridge.stitching import ENSEMBLE_TEMPERATURE

from .test_config import TINY

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stitched_mean(path: Path, variant: str) -> float:
    with path.open(encoding="utf-8", newline="") as handle:
        values = [
            float(r["value"])
            for r in csv.DictReader(handle)
            if r["variant"] == variant and r["metric"] == "accuracy" and r["source"] != r["target"]
        ]
    return float(np.mean(values))


def test_the_temperature_sweep_reproduces_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    config = parse_config({**TINY, "variants": {**TINY["variants"], "selection": True}})
    results = runner.run(config, tmp_path / "run", progress=False, report=False)
    sweep = _script("ensemble_temperature")
    table = sweep._run(tmp_path / "run")["synthetic"]
    for variant in ("euclidean", "l1", "cosine", "product:mlp_sum", "selected"):
        assert np.mean(table[variant]) == pytest.approx(_stitched_mean(results, variant))
    # The run's ensemble is the sweep's at the library's temperature.
    assert ENSEMBLE_TEMPERATURE in sweep.TEMPERATURES
    ensemble = np.mean(table[f"T={ENSEMBLE_TEMPERATURE:g}"])
    assert ensemble == pytest.approx(_stitched_mean(results, "ensemble"))
    assert math.inf in sweep.TEMPERATURES
    assert np.mean(table["oracle"]) >= max(np.mean(table[v]) for v in ("euclidean", "cosine"))


def test_the_anchor_strategy_configs_differ_only_where_they_should() -> None:
    script = _script("anchor_strategies")
    config = parse_config(TINY)
    configs = script._configs(config)
    assert set(configs) == {"uniform", "stratified", "fps", "kmeans", "subset-product"}
    for name in ("uniform", "stratified", "fps", "kmeans"):
        assert configs[name].anchors.strategy == name
        assert configs[name].variants == config.variants
    subset = configs["subset-product"].variants
    assert subset.product_projections == ("cosine", "euclidean", "l1")
    assert subset.aggregations == ("mlp_sum",) and subset.projections == ()


def test_the_strategy_runs_may_leave_the_products_out() -> None:
    configs = _script("anchor_strategies")._configs(parse_config(TINY), ())
    assert all(configs[s].variants.aggregations == () for s in ("uniform", "kmeans"))
    assert configs["subset-product"].variants.aggregations == ("mlp_sum",)


def test_the_strategy_table_of_finished_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    script = _script("anchor_strategies")
    runner.run(
        script._configs(parse_config(TINY))["uniform"],
        tmp_path / "out" / "uniform",
        progress=False,
        report=False,
    )
    argv = ["anchor_strategies.py", str(path), "--out", str(tmp_path / "out"), "--table-only"]
    monkeypatch.setattr("sys.argv", argv)
    script.main()
    printed = capsys.readouterr()
    rows = [line for line in printed.out.splitlines() if line.startswith("| synthetic |")]
    assert [r.split(" | ")[1] for r in rows] == ["uniform"]  # only the finished folder
    cosine = _stitched_mean(tmp_path / "out" / "uniform" / "results.csv", "cosine")
    header = printed.out.splitlines()[0].split(" | ")
    assert rows[0].split(" | ")[header.index("cosine")].startswith(f"{cosine:.3f} ± ")
    assert "not run (--table-only)" in printed.err


def test_the_performance_benchmark_on_a_tiny_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make bench` runs end to end; its figures are positive and its ratios consistent."""
    bench = _script("bench_performance")
    figures = tmp_path / "figures.json"
    args = ["--rows", "40", "--anchors", "20", "--dim", "8", "--repeat", "1", "--heads", "2",
            "--head-samples", "64", "--head-epochs", "1", "--stream-rows", "300",
            "--stream-anchors", "20", "--json", str(figures)]  # fmt: skip
    assert bench.main(args) == 0
    printed = capsys.readouterr().out
    for heading in ("## Projections", "## Head training", "## Streaming"):
        assert heading in printed
    import json

    data = json.loads(figures.read_text())
    rows = {r["case"]: r for r in data["projections"]}
    assert {"cosine", "euclidean", "l1", "linf", "gemm x @ anchors.T"} <= set(rows)
    for row in rows.values():
        assert row["forward_s"] > 0
        assert math.isclose(row["vs_cosine"], row["forward_s"] / rows["cosine"]["forward_s"])
    for name in ("euclidean", "l1", "linf"):
        assert rows[name]["cdist_forward_s"] > 0 and rows[name]["fwd_bwd_s"] > 0
    assert all(r["stacked_heads_per_s"] > 0 and r["heads"] == 2 for r in data["heads"])
    assert data["streaming"]["rows"] == 300 and data["streaming"]["rows_per_s"] > 0
