"""The latent-similarity study (task ``similarity``): its samples, the run, the report.

The maths it calls (``represent``, ``class_invariances``, the measures) is tested with
:mod:`latentbridge.analysis` in ``test_analysis.py``."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import latentbridge as lb
from latentbridge.cli import main
from latentbridge.experiments import runner
from latentbridge.experiments.config import parse_config
from latentbridge.experiments.report import ResultRow
from latentbridge.experiments.tasks import similarity as sim

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_study_reports_the_measures_of_the_core() -> None:
    assert set(sim.MEASURES) == set(lb.analysis.SIMILARITY_MEASURES)
    assert len(sim.MEASURES) == len(set(sim.MEASURES))
    assert {m.name: (m.low, m.high) for m in sim.METRICS} == {
        "linear_cka": (0.0, 1.0),
        "rbf_cka": (0.0, 1.0),
        "distance_pearson": (-1.0, 1.0),
        "mean_cosine": (-1.0, 1.0),
    }


def test_sample_indices() -> None:
    idx = sim.sample_indices(100, 30)
    assert np.array_equal(idx, sim.sample_indices(100, 30))
    assert len(idx) == 30 and len(set(idx.tolist())) == 30 and np.all(np.diff(idx) > 0)
    assert np.array_equal(sim.sample_indices(10, 30), np.arange(10))
    with pytest.raises(ValueError, match="num_samples"):
        sim.sample_indices(10, 1)


# --------------------------------------------------------------------------------------------
# The run, end to end through the CLI

LINEAR8 = "test-similarity-linear8"

TINY = {
    "name": "tiny-similarity",
    "task": "similarity",
    "datasets": [
        {
            "name": "digits",
            "encoders": [LINEAR8],
            "trained_encoders": {
                "architectures": ["mlp"],
                "seeds": [0, 1],
                "epochs": 1,
                "latent_dim": 16,
            },
        }
    ],
    "anchors": {"num": 32},
    "seeds": [0, 1],
    "similarity": {
        "classes": ["absolute", "dot", "cosine", "euclidean", "l1", "linf", "product"],
        "measures": ["linear_cka", "rbf_cka", "mean_cosine", "distance_pearson"],
        "num_samples": 120,
    },
}
ENCODERS = [LINEAR8, "digits/mlp-d16-s0", "digits/mlp-d16-s1"]
WIDTH = {LINEAR8: 8, "digits/mlp-d16-s0": 16, "digits/mlp-d16-s1": 16}


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The TINY config's file, with a tmp cache and a registered 8-d linear pixel encoder."""
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8))
    lb.encoders.register_module(LINEAR8, module, "vision", 8, overwrite=True)
    path = tmp_path / "similarity.yaml"
    path.write_text(yaml.safe_dump(TINY))
    yield path
    lb.encoders.unregister(LINEAR8)


def _rows(path: Path) -> dict[tuple[str, str, str, int, str], str]:
    with path.open() as handle:
        return {
            (r["source"], r["target"], r["variant"], int(r["seed"]), r["metric"]): r["value"]
            for r in csv.DictReader(handle)
        }


def test_tiny_run_through_the_cli(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    assert main(["run", str(tiny), "--out", str(out), "--quiet"]) == 0
    rows = _rows(out / "results.csv")
    classes = TINY["similarity"]["classes"]  # type: ignore[index]
    measures = TINY["similarity"]["measures"]  # type: ignore[index]
    pairs = [(a, b) for a in ENCODERS for b in ENCODERS if a != b]
    expected = {
        (a, b, c, s, m) for a, b in pairs for c in classes for s in (0, 1) for m in measures
    }
    assert set(rows) == expected  # every class x ordered pair x seed x measure, no A = A
    for (a, b, c, s, m), value in rows.items():
        assert value == rows[(b, a, c, s, m)]  # computed once, written for both orders
        if m == "mean_cosine" and c == "absolute" and WIDTH[a] != WIDTH[b]:
            assert value == ""  # not applicable across widths
        else:
            assert value != "", (a, b, c, s, m)
            low = -1.0 if m in ("mean_cosine", "distance_pearson") else 0.0
            assert low <= float(value) <= 1.0
    # The latents do not depend on the anchors: absolute values repeat across seeds.
    for a, b in pairs:
        assert (
            rows[(a, b, "absolute", 0, "linear_cka")] == rows[(a, b, "absolute", 1, "linear_cka")]
        )
    assert (
        rows[(ENCODERS[1], ENCODERS[2], "cosine", 0, "linear_cka")]
        != (rows[(ENCODERS[1], ENCODERS[2], "cosine", 1, "linear_cka")])
    )
    # Deterministic: a second run elsewhere gives the same bytes.
    again = tmp_path / "again"
    assert main(["run", str(tiny), "--out", str(again), "--quiet"]) == 0
    assert (again / "results.csv").read_bytes() == (out / "results.csv").read_bytes()

    # Resuming a finished run recomputes nothing.
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(sim, "compare", boom)
    monkeypatch.setattr(sim, "PreparedSpace", boom)
    before = (out / "results.csv").read_bytes()
    assert main(["run", str(tiny), "--out", str(out), "--quiet"]) == 0
    assert (out / "results.csv").read_bytes() == before


def test_interrupted_run_resumes_where_it_stopped(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config({**TINY, "seeds": [0], "similarity": {"num_samples": 60}})
    real = sim.compare
    calls: list[tuple[str, str]] = []
    interrupt = True

    def counting(
        a: lb.analysis.PreparedSpace, b: lb.analysis.PreparedSpace
    ) -> dict[str, float | None]:
        calls.append((a.name, b.name))
        if interrupt and len(calls) == 5:
            raise KeyboardInterrupt
        return real(a, b)

    monkeypatch.setattr(sim, "compare", counting)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        runner.run(config, out, progress=False, report=False)
    # The first (class, seed) group: 3 pairs, 3 finished cells; the second stopped in its first.
    finished = _rows(out / "results.csv")
    assert {k[2] for k in finished} == {config.similarity.classes[0]}  # type: ignore[union-attr]
    assert len(finished) == 6 * len(config.metrics)
    calls.clear()
    interrupt = False
    runner.run(config, out, progress=False, report=False)
    groups = len(config.similarity.classes)  # type: ignore[union-attr]
    assert len(calls) == 3 * (groups - 1)  # every pair of the unfinished groups, once
    complete = _rows(out / "results.csv")
    assert all(complete[k] == v for k, v in finished.items())
    assert len(complete) == 6 * groups * len(config.metrics)


def test_too_many_samples_name_the_config_key(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study keeps N x N matrices: past the limit the run says which key to lower."""
    config = parse_config({**TINY, "seeds": [0], "similarity": {"num_samples": 60}})
    monkeypatch.setattr(sim, "DISTANCE_CORRELATION_MAX_N", 59)
    with pytest.raises(ValueError, match=r"num_samples=60 represents 60 test samples.*at most 59"):
        runner.run(config, tmp_path / "run", progress=False, report=False)
    monkeypatch.setattr(sim, "DISTANCE_CORRELATION_MAX_N", 60)  # at the limit: it runs
    runner.run(config, tmp_path / "run", progress=False, report=False)


# --------------------------------------------------------------------------------------------
# Report helpers


def _row(
    a: str, b: str, c: str, seed: int, value: float | None, m: str = "linear_cka"
) -> ResultRow:
    return ResultRow("ds", a, b, c, seed, m, value)


HAND_MADE = [
    *(
        r
        for a, b in (("a", "b"), ("b", "a"))
        for r in (
            _row(a, b, "absolute", 0, 0.4),
            _row(a, b, "absolute", 1, 0.6),
            _row(a, b, "cosine", 0, 0.9),
            _row(a, b, "cosine", 1, 0.9),
        )
    ),
    _row("a", "c", "absolute", 0, None),
    _row("a", "c", "absolute", 1, None),
    _row("a", "c", "cosine", 0, 0.7),
    _row("a", "c", "cosine", 1, 0.8),
    _row("a", "b", "cosine", 0, 0.1, m="distance_pearson"),
]


def test_similarity_table_exact_markdown() -> None:
    assert sim.similarity_table(HAND_MADE, "ds", "linear_cka") == (
        "| Encoder pair | absolute | cosine |\n"
        "|:---|---:|---:|\n"
        "| a ↔ b | 0.500 ± 0.141 | **0.900 ± 0.000** |\n"
        "| a ↔ c | n/a | **0.750 ± 0.071** |\n"
        "| mean over pairs | 0.500 ± 0.000 | **0.825 ± 0.106** |\n"
    )
    assert sim.similarity_table(HAND_MADE, "ds", "distance_pearson") == (
        "| Encoder pair | cosine |\n"
        "|:---|---:|\n"
        "| a ↔ b | **0.100 ± 0.000** |\n"
        "| mean over pairs | **0.100 ± 0.000** |\n"
    )
    with pytest.raises(ValueError, match="no 'rbf_cka' results for dataset 'ds'"):
        sim.similarity_table(HAND_MADE, "ds", "rbf_cka")


def test_similarity_bar_chart_is_a_deterministic_png() -> None:
    png = sim.similarity_bar_chart(HAND_MADE, "ds", "linear_cka")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png == sim.similarity_bar_chart(HAND_MADE, "ds", "linear_cka")
    with pytest.raises(ValueError, match="no 'mean_cosine' results"):
        sim.similarity_bar_chart(HAND_MADE, "ds", "mean_cosine")
