"""The stitchability section: Spearman ρ of the anchor consistency and the real metrics."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from latentbridge.cli import main
from latentbridge.experiments.report import write_report
from latentbridge.experiments.results import CONSISTENCY, MetricInfo, ResultRow
from latentbridge.experiments.stitchability import (
    Point,
    spearman,
    stitchability_points,
    stitchability_section,
)
from latentbridge.experiments.tables import Table

from .test_config import TINY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ACCURACY = MetricInfo("accuracy", "Accuracy", 0.0, 1.0)
MSE = MetricInfo("mse", "MSE", 0.0, 1.0, higher_is_better=False)
ENCODERS = ("a", "b", "c")


# -- spearman ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 7, 20, 101])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_matches_scipy_with_ties(n: int, seed: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=n).astype(float)  # few distinct values: many ties
    y = x + rng.integers(-2, 3, size=n)
    if len(set(x)) == 1 or len(set(y)) == 1:
        assert spearman(x, y) is None
        return
    want = float(stats.spearmanr(x, y).statistic)
    assert spearman(x, y) == pytest.approx(want, abs=1e-12)
    z = rng.normal(size=n)  # no ties
    assert spearman(z, y) == pytest.approx(float(stats.spearmanr(z, y).statistic), abs=1e-12)


def test_spearman_closed_cases() -> None:
    x = [0.1, 0.5, 0.2, 0.9, 0.7]
    assert spearman(x, [v**3 + 2 for v in x]) == pytest.approx(1.0)  # monotone
    assert spearman(x, [-v for v in x]) == pytest.approx(-1.0)  # reversed
    assert spearman(x, [0.3] * 5) is None  # constant
    assert spearman([1.0] * 5, x) is None
    assert spearman([0.1, 0.2], [0.3, 0.4]) is None  # n < 3
    assert spearman([], []) is None
    assert spearman([1, 1, 2], [1, 2, 2]) == pytest.approx(0.5)  # average ranks for ties
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        spearman([1, 2, float("nan")], [1, 2, 3])


# -- pairing and the section from hand-made rows --------------------------------------------------


def _rows(metric: str = "accuracy", consistency: bool = True) -> list[ResultRow]:
    """Two datasets; ``metric`` rises with the consistency on "ds" (monotone), and "ds2" has a
    single stitched point. Non-stitched pairs carry no consistency."""
    rows: list[ResultRow] = []
    k = 0
    for dataset, variants in (("ds", ("cosine", "euclidean")), ("ds2", ("cosine",))):
        for variant in variants:
            for seed in (0, 1):
                for source in ENCODERS:
                    for target in ENCODERS:
                        if dataset == "ds2" and (seed, source, target) != (0, "a", "b"):
                            continue
                        k += 1
                        value = 0.9 if source == target else k / 100
                        key = (dataset, source, target, variant, seed)
                        rows.append(ResultRow(*key, metric, value))
                        if consistency and source != target:
                            rows.append(ResultRow(*key, CONSISTENCY, k / 200))
    return rows


def test_points_pair_each_consistency_with_the_same_key() -> None:
    rows = [
        ResultRow("ds", "a", "b", "cosine", 0, "accuracy", 0.5),
        ResultRow("ds", "a", "b", "cosine", 0, CONSISTENCY, 0.7),
        ResultRow("ds", "a", "b", "cosine", 1, "accuracy", 0.6),  # no consistency: left out
        ResultRow("ds", "b", "a", "cosine", 0, "accuracy", None),  # n/a metric: left out
        ResultRow("ds", "b", "a", "cosine", 0, CONSISTENCY, 0.2),
        ResultRow("ds", "a", "c", "absolute", 0, "accuracy", 0.1),
        ResultRow("ds", "a", "c", "absolute", 0, CONSISTENCY, None),  # n/a consistency
        ResultRow("ds", "a", "a", "cosine", 0, "accuracy", 0.9),  # not stitched
        ResultRow("other", "a", "b", "cosine", 0, "macro_f1", 0.4),
        ResultRow("other", "a", "b", "cosine", 0, CONSISTENCY, 0.4),
    ]
    points = stitchability_points(rows, "accuracy")
    assert points == {"ds": [Point("cosine", 0.7, 0.5)], "other": []}
    assert stitchability_points(rows, "macro_f1") == {
        "ds": [],
        "other": [Point("cosine", 0.4, 0.4)],
    }


def _table(section) -> Table:
    (_, table), *_ = section.tables
    assert isinstance(table, Table)
    return table


def test_a_monotone_consistency_has_rho_one() -> None:
    section = stitchability_section(_rows(), ACCURACY)
    assert section is not None
    table = _table(section)
    assert table.headers == ["Dataset", "Spearman ρ", "points", "ρ, selection candidates", "points"]
    cells = [[c.text for c in row] for row in table.rows]
    assert cells == [["ds", "1.000", "24", "1.000", "24"], ["ds2", "n/a", "1", "n/a", "1"]]
    assert "positive ρ" in table.notes[0]
    assert [f.file for f in section.figures] == [
        "charts/stitchability__ds__accuracy.png",
        "charts/stitchability__ds2__accuracy.png",
    ]
    assert all(f.png.startswith(PNG_MAGIC) for f in section.figures)
    assert "ds" in section.figures[0].caption


def test_a_lower_is_better_metric_asks_for_a_negative_rho() -> None:
    rows = [
        ResultRow(r.dataset, r.source, r.target, r.variant, r.seed, r.metric, 1 - r.value)
        if r.metric == "mse" and r.value is not None
        else r
        for r in _rows("mse")
    ]
    section = stitchability_section(rows, MSE)
    assert section is not None
    table = _table(section)
    assert table.rows[0][1].text == "-1.000"
    assert "negative ρ" in table.notes[0]


def test_no_section_without_consistency_rows() -> None:
    assert stitchability_section(_rows(consistency=False), ACCURACY) is None
    assert stitchability_section([], ACCURACY) is None


def test_colliding_dataset_slugs_get_distinct_files() -> None:
    rows = [
        ResultRow(d, s, t, "cosine", 0, m, v)
        for d in ("a b", "a-b")
        for s, t, v in (("x", "y", 0.1), ("y", "x", 0.5), ("x", "z", 0.3))
        for m in ("accuracy", CONSISTENCY)
    ]
    section = stitchability_section(rows, ACCURACY)
    assert section is not None
    files = [f.file for f in section.figures]
    assert len(set(files)) == 2 and all(f.startswith("charts/stitchability__a-b") for f in files)


# -- the report --------------------------------------------------------------------------------


def _write(folder: Path, rows: list[ResultRow], task: str = "classification") -> None:
    folder.mkdir(parents=True)
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "source", "target", "variant", "seed", "metric", "value"])
        writer.writerows(
            [r.dataset, r.source, r.target, r.variant, r.seed, r.metric, r.value] for r in rows
        )
    (folder / "config.json").write_text(f'{{"name": "t", "task": "{task}"}}')


def test_report_without_consistency_has_no_stitchability(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    _write(folder, _rows(consistency=False))
    page = write_report(folder).read_text()
    summary = (folder / "summary.md").read_text()
    assert "Stitchability" not in summary and "Stitchability" not in page
    assert not (folder / "charts").exists()


def test_report_sections_figures_and_no_consistency_heatmap(tmp_path: Path) -> None:
    folder = tmp_path / "new"
    _write(folder, _rows("mse"), task="reconstruction")
    page = write_report(folder).read_text()
    summary = (folder / "summary.md").read_text()
    titles = re.findall(r"^## (.*)$", summary, flags=re.M)
    assert titles == [
        "How to read",
        "MSE",
        "Stitchability: MSE against anchor consistency",
        "Anchor consistency",
    ]
    consistency = summary.split("## Anchor consistency")[1]
    assert "### Stitched" in consistency and "Non-stitched" not in consistency
    assert "ablation" not in consistency  # no product rows
    assert "| ds | " in summary and "negative ρ" in summary
    for file in re.findall(r"!\[[^\]]*\]\((charts/[^)]+\.png)\)", summary):
        assert (folder / file).read_bytes().startswith(PNG_MAGIC)
    assert "charts/stitchability__ds__mse.png" in summary
    assert sorted(p.name for p in (folder / "heatmaps").iterdir()) == [
        "ds2__cosine__mse.png",
        "ds__cosine__mse.png",
        "ds__euclidean__mse.png",
    ]
    stitch = page.split("<h2>Stitchability: MSE against anchor consistency</h2>")[1]
    stitch = stitch.split("<h2>")[0]
    assert stitch.count("data:image/png;base64,") == 2  # embedded in its own section
    assert "Similarity by invariance class" not in page


def test_tiny_run_summary_has_the_stitchability_section(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 0
    summary = (out / "summary.md").read_text()
    for title in ("Accuracy", "Macro F1"):
        assert f"## Stitchability: {title} against anchor consistency" in summary
    assert re.search(r"\| synthetic \| -?\d\.\d{3} \| 30 \|", summary)  # 3 x 2 pairs x 5 variants
    assert (out / "charts" / "stitchability__synthetic__accuracy.png").is_file()
    assert "](charts/stitchability__synthetic__macro_f1.png)" in summary
    consistency = summary.split("## Anchor consistency")[1]
    assert "Non-stitched" not in consistency and "| — |" not in consistency
    assert not any("anchor_consistency" in p.name for p in (out / "heatmaps").iterdir())
    assert "Stitchability: Accuracy" in (out / "report.html").read_text()


def test_the_candidates_rho_leaves_out_absolute_and_translation() -> None:
    rows = []
    # cosine and the product rise with the consistency; absolute and translation fall with it
    for i, (variant, sign) in enumerate(
        [("cosine", 1), ("product:mlp_sum", 1), ("absolute", -1), ("translation:affine", -1)]
    ):
        for j in range(4):
            key = ("ds", "a", f"t{j}", variant, 0)
            c = 0.1 * j + 0.01 * i
            rows += [
                ResultRow(*key, CONSISTENCY, c),
                ResultRow(*key, "accuracy", 0.5 + sign * 0.1 * j + 0.001 * i),
            ]
    table = _table(stitchability_section(rows, ACCURACY))
    (row,) = [[c.text for c in r] for r in table.rows]
    assert row[3:] == ["1.000", "8"]
    assert row[2] == "16" and float(row[1]) < 0.5


def test_the_selections_are_plotted_but_left_out_of_rho() -> None:
    rows = []
    for j in range(4):
        for variant, value in (("cosine", 0.5 + 0.1 * j), ("selected", 0.9 - 0.1 * j)):
            key = ("ds", "a", f"t{j}", variant, 0)
            rows += [ResultRow(*key, CONSISTENCY, 0.1 * j), ResultRow(*key, "accuracy", value)]
    section = stitchability_section(rows, ACCURACY)
    (row,) = [[c.text for c in r] for r in _table(section).rows]
    assert row[1:] == ["1.000", "4", "1.000", "4"]
    assert len(section.figures) == 1
