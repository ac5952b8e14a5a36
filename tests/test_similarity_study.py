"""The latent-similarity study (task ``similarity``): invariances, measures, the run, the report."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import latentbridge as lb
from latentbridge.analysis import sample_space
from latentbridge.cli import main
from latentbridge.experiments import runner
from latentbridge.experiments.config import parse_config
from latentbridge.experiments.report import ResultRow
from latentbridge.experiments.tasks import similarity as sim
from latentbridge.normalization import ABSOLUTE
from latentbridge.transformations import TRANSFORMATIONS, random_transformation

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _space(seed: int, n: int = 80, k: int = 16, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    points = sample_space(n + k, dim, generator=torch.Generator().manual_seed(seed))
    return points[:n], points[n:]


# --------------------------------------------------------------------------------------------
# Invariances, driven by the projections' declarations


RELATIVE_CLASSES = ["product", *lb.projections.available()]


@pytest.mark.parametrize(("name", "norm"), list(itertools.product(RELATIVE_CLASSES, ABSOLUTE)))
def test_declared_invariances_give_one_and_the_others_do_not(name: str, norm: str) -> None:
    """A class invariant (up to a positive factor) to T compares to its T-image with every
    measure exactly 1; for any other T the structural measures drop clearly below 1."""
    x, anchors = _space(0)
    invariant = sim.class_invariances(name, normalization=norm)
    before = sim.represent(x, anchors, name, normalization=norm)
    for kind in TRANSFORMATIONS:
        t = random_transformation(kind, x.shape[1], generator=torch.Generator().manual_seed(7))
        after = sim.represent(t(x), t(anchors), name, normalization=norm)
        values = sim.similarity(before, after)
        assert set(values) == set(sim.MEASURES)
        if kind in invariant:
            for measure, value in values.items():
                assert value == pytest.approx(1.0, abs=1e-6), (name, norm, kind, measure)
        else:
            for measure in ("linear_cka", "rbf_cka", "distance_pearson"):
                value = values[measure]
                assert value is not None and value < 1 - 1e-3, (name, norm, kind, measure, value)
            assert values["mean_cosine"] is not None and values["mean_cosine"] < 1 - 1e-6


def test_class_invariances_follow_the_registry() -> None:
    get = lb.projections.get
    for name in lb.projections.available():
        assert sim.class_invariances(name) == get(name).invariances | get(name).scaled_by
    assert sim.class_invariances("cosine") >= {"orthogonal", "isotropic_scaling"}
    assert "orthogonal" not in sim.class_invariances("l1")
    assert "translation" not in sim.class_invariances("cosine")
    # The product is invariant to what all its subspaces share.
    assert "orthogonal" in sim.class_invariances("product", product_projections=["dot", "cosine"])
    assert "orthogonal" not in sim.class_invariances(
        "product", product_projections=["cosine", "l1"]
    )
    assert sim.class_invariances("absolute") == {"isotropic_scaling"}


def test_absolute_latents_under_a_rotation() -> None:
    """The latents are not invariant to a rotation, but CKA and distances are blind to it."""
    x, anchors = _space(1)
    q = random_transformation("orthogonal", x.shape[1], generator=torch.Generator().manual_seed(3))
    values = sim.similarity(sim.represent(x, anchors, "absolute"), q(x))
    for measure in ("linear_cka", "rbf_cka", "distance_pearson"):
        assert values[measure] == pytest.approx(1.0, abs=1e-9)
    assert values["mean_cosine"] is not None and values["mean_cosine"] < 0.99


def test_float32_invariance_holds_to_1e6() -> None:
    x, anchors = _space(2, n=200, k=32, dim=16)
    x, anchors = x.float(), anchors.float()
    q = random_transformation("orthogonal", 16, generator=torch.Generator().manual_seed(4))
    for name in ("cosine", "euclidean", "dot"):
        a = sim.represent(x, anchors, name)
        b = sim.represent(q(x), q(anchors), name)
        assert a.dtype == torch.float32
        for measure, value in sim.similarity(a, b).items():
            assert value == pytest.approx(1.0, abs=1e-6), (name, measure)


# --------------------------------------------------------------------------------------------
# Measures against independent computations


def _numpy_cka(kx: np.ndarray, ky: np.ndarray) -> float:
    n = kx.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    a, b = h @ kx @ h, h @ ky @ h
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def test_measures_match_independent_computations() -> None:
    from scipy.spatial.distance import pdist, squareform

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 7))
    y = x @ rng.normal(size=(7, 5)) + 0.5 * rng.normal(size=(60, 5))
    z = rng.normal(size=(60, 7)) + x
    for a, b in ((x, y), (x, z)):
        values = sim.similarity(a, b)
        dx, dy = pdist(a), pdist(b)
        assert values["distance_pearson"] == pytest.approx(np.corrcoef(dx, dy)[0, 1], abs=1e-12)
        assert values["linear_cka"] == pytest.approx(_numpy_cka(a @ a.T, b @ b.T), abs=1e-12)
        gx = np.exp(-(squareform(dx) ** 2) / (2 * np.median(dx) ** 2))
        gy = np.exp(-(squareform(dy) ** 2) / (2 * np.median(dy) ** 2))
        assert values["rbf_cka"] == pytest.approx(_numpy_cka(gx, gy), abs=1e-12)
        # ... and the library's own measures
        assert values["linear_cka"] == pytest.approx(lb.metrics.linear_cka(a, b), abs=1e-12)
        assert values["rbf_cka"] == pytest.approx(lb.metrics.rbf_cka(a, b), abs=1e-12)
        assert values["distance_pearson"] == pytest.approx(
            lb.metrics.distance_correlation(a, b), abs=1e-12
        )
    assert sim.similarity(x, y)["mean_cosine"] is None  # different widths: not applicable
    cos = np.sum(x * z, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(z, axis=1)
    assert sim.similarity(x, z)["mean_cosine"] == pytest.approx(cos.mean(), abs=1e-12)
    assert sim.similarity(x, z, ["linear_cka"]) == {
        "linear_cka": pytest.approx(_numpy_cka(x @ x.T, z @ z.T))
    }


def test_measures_are_symmetric_and_prepared_spaces_are_reused() -> None:
    rng = np.random.default_rng(1)
    a = sim.PreparedSpace(rng.normal(size=(30, 4)), sim.MEASURES, "a")
    b = sim.PreparedSpace(rng.normal(size=(30, 4)), sim.MEASURES, "b")
    assert sim.compare(a, b) == sim.compare(b, a)
    assert sim.compare(a, a) == pytest.approx({m: 1.0 for m in sim.MEASURES})


def test_standardise_and_product() -> None:
    rng = np.random.default_rng(2)
    r = torch.as_tensor(rng.normal(3.0, 2.0, size=(20, 6)))
    s = sim.standardise(r)
    assert torch.allclose(s.mean(dim=0), torch.zeros(6, dtype=s.dtype), atol=1e-12)
    assert float(torch.linalg.matrix_norm(s)) == pytest.approx(1.0)
    assert torch.equal(sim.standardise(torch.ones(5, 3)), torch.zeros(5, 3))
    x, anchors = _space(3)
    product = sim.represent(x, anchors, "product", product_projections=["cosine", "l1"])
    k = anchors.shape[0]
    assert product.shape == (x.shape[0], 2 * k)
    for i, p in enumerate(["cosine", "l1"]):
        block = product[:, i * k : (i + 1) * k]
        assert torch.allclose(block, sim.standardise(lb.relative_projection(x, anchors, p)))


def test_sample_indices() -> None:
    idx = sim.sample_indices(100, 30)
    assert np.array_equal(idx, sim.sample_indices(100, 30))
    assert len(idx) == 30 and len(set(idx.tolist())) == 30 and np.all(np.diff(idx) > 0)
    assert np.array_equal(sim.sample_indices(10, 30), np.arange(10))
    with pytest.raises(ValueError, match="num_samples"):
        sim.sample_indices(10, 1)


def test_bad_arguments_are_named() -> None:
    x, anchors = _space(4)
    with pytest.raises(ValueError, match="name must be one of"):
        sim.represent(x, anchors, "cosinus")
    with pytest.raises(ValueError, match="product_projections"):
        sim.represent(x, anchors, "product", product_projections=[])
    with pytest.raises(ValueError, match="normalization"):
        sim.represent(x, anchors, "cosine", normalization="zscore")
    with pytest.raises(ValueError, match="measures"):
        sim.similarity(x, x, ["pearson"])
    with pytest.raises(ValueError, match="at least 3 samples"):
        sim.similarity(x[:2], x[:2])
    with pytest.raises(ValueError, match="same samples"):
        sim.similarity(x, x[:10])
    with pytest.raises(ValueError, match="zero variance"):
        sim.similarity(torch.ones(5, 2), x[:5])
    a = sim.PreparedSpace(x, ["linear_cka"], "a")
    with pytest.raises(ValueError, match="not prepared for the measure 'mean_cosine'"):
        sim.compare(a, a, ["mean_cosine"])


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

    def counting(a: sim.PreparedSpace, b: sim.PreparedSpace) -> dict[str, float | None]:
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
