"""Behaviour is kept: tiny configs of every task reproduce the results stored with the tests.

``tests/data/regression/<task>.yaml`` covers every variant family of its task (absolute, single
projections, products with several aggregations, latent translation) and ``<task>.csv`` holds
the ``results.csv`` that ``latentbridge run`` wrote for it when it was recorded. A refactoring
of the experiments must reproduce it: the same rows in the same order, the same n/a cells, and
the same values. Values are compared with a tolerance, because trained heads and models round
differently on another CPU (BLAS and oneDNN kernels differ between AMD and Intel): each value
within ``ATOL`` and the mean absolute difference within ``MEAN_ATOL``. A change of seeding,
initialisation, anchors or data order moves most values by more (see the negative control).

To record the files again after an intended change of results::

    latentbridge run tests/data/regression/<task>.yaml --out /tmp/r --quiet
    cp /tmp/r/results.csv tests/data/regression/<task>.csv
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from latentbridge.experiments import config
from latentbridge.experiments.config import load_config
from latentbridge.experiments.runner import run

HERE = Path(__file__).parent / "data" / "regression"
TASKS = config.TASKS
# Accuracy-like values move by 1/N per flipped test prediction; MSE and PSNR by rounding.
ATOL = {"psnr": 0.2}
DEFAULT_ATOL = 0.03
MEAN_ATOL = 0.005

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _read(path: Path) -> tuple[list[tuple[str, ...]], list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    assert header[-1] == "value"
    return [tuple(r[:-1]) for r in rows], [r[-1] for r in rows]


def _difference(
    produced: tuple[list[tuple[str, ...]], list[str]],
    expected: tuple[list[tuple[str, ...]], list[str]],
) -> tuple[float, float]:
    """(largest difference in units of its tolerance, mean absolute difference).

    The row keys, their order and the n/a cells must match exactly.
    """
    (keys, values), (want_keys, want_values) = produced, expected
    assert keys == want_keys
    assert [v == "" for v in values] == [v == "" for v in want_values]
    worst, diffs = 0.0, []
    for key, got, want in zip(keys, values, want_values, strict=True):
        if want == "":
            continue
        diff = abs(float(got) - float(want))
        diffs.append(diff)
        worst = max(worst, diff / ATOL.get(key[-1], DEFAULT_ATOL))  # key[-1]: the metric
    return worst, float(np.mean(diffs)) if diffs else 0.0


@pytest.mark.parametrize("task", TASKS)
def test_tiny_configs_reproduce_their_recorded_results(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))  # trained encoders
    results = run(load_config(HERE / f"{task}.yaml"), tmp_path / "run", progress=False)
    worst, mean = _difference(_read(results), _read(HERE / f"{task}.csv"))
    assert worst <= 1.0, f"a value moved by {worst:.2f}x its tolerance"
    assert mean <= MEAN_ATOL, f"values moved by {mean:.4f} on average"


def test_the_comparison_sees_other_seeds(tmp_path: Path) -> None:
    """Negative control: the config run with other seeds (relabelled) is not a reproduction."""
    config = load_config(HERE / "classification.yaml")
    results = run(replace(config, seeds=(5, 6)), tmp_path / "run", progress=False, report=False)
    keys, values = _read(results)
    relabel = {"5": "0", "6": "1"}
    keys = [(*k[:4], relabel[k[4]], k[5]) for k in keys]
    worst, mean = _difference((keys, values), _read(HERE / "classification.csv"))
    assert worst > 1.0 or mean > MEAN_ATOL
