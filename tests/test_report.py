"""Tests for latentbridge.experiments.report on a small synthetic results.csv."""

from __future__ import annotations

import base64
import csv
import hashlib
import math
import re
import statistics
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentbridge.experiments import heatmaps as heatmaps_module
from latentbridge.experiments import report
from latentbridge.experiments.headline import BEST_COLOUR, chance_level, headline
from latentbridge.experiments.page import SORT_SCRIPT
from latentbridge.experiments.report import (
    ResultRow,
    ablation_table,
    pair_matrix,
    read_results,
    save_heatmap,
    summary_table,
    write_report,
)
from latentbridge.experiments.results import MetricInfo
from latentbridge.experiments.tables import Cell, Table, to_html

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATASETS = ["ds1", "ds2"]
ENCODERS = ["enc_a", "enc_b", "big"]  # "big" has another dimension: absolute n/a with it
VARIANTS = ["absolute", "cosine", "euclidean", "l1", "linf", "product:mlp_sum", "product:concat"]
SEEDS = [0, 1]
METRICS = ["accuracy", "macro_f1"]
# The columns of the paper-style summary table of the synthetic set.
SUMMARY_HEADER = ["Dataset", "Absolute", "Cosine", "Euclidean", "L1", "L∞", "Product (mlp_sum)"]
# Base value per (dataset, variant): ds1's best stitched variant is product:mlp_sum, ds2's
# is cosine.
BASE = {
    "ds1": dict(zip(VARIANTS, [0.30, 0.60, 0.55, 0.50, 0.45, 0.80, 0.70], strict=True)),
    "ds2": dict(zip(VARIANTS, [0.20, 0.78, 0.50, 0.40, 0.35, 0.72, 0.62], strict=True)),
}


def value_of(dataset: str, train: str, test: str, variant: str, seed: int, metric: str):
    """The synthetic value, None where absolute stitching crosses dimensions."""
    if variant == "absolute" and train != test and "big" in (train, test):
        return None
    i, j = ENCODERS.index(train), ENCODERS.index(test)
    v = BASE[dataset][variant] + 0.011 * i + 0.023 * j + 0.004 * seed
    v += 0.1 if train == test else 0.0
    return round(v - (0.05 if metric == "macro_f1" else 0.0), 6)


def synthetic_rows() -> list[list[object]]:
    out: list[list[object]] = []
    for d in DATASETS:
        for a in ENCODERS:
            for b in ENCODERS:
                for variant in VARIANTS:
                    for seed in SEEDS:
                        for metric in METRICS:
                            v = value_of(d, a, b, variant, seed, metric)
                            out.append([d, a, b, variant, seed, metric, "" if v is None else v])
    return out


def write_csv(path: Path, rows: list[list[object]], header=report.COLUMNS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "run" / "results.csv", synthetic_rows())


def expected_cell(dataset: str, variant: str, metric: str, stitched: bool) -> str:
    values = [
        value_of(dataset, a, b, variant, s, metric)
        for a in ENCODERS
        for b in ENCODERS
        for s in SEEDS
        if (a != b) == stitched
    ]
    present = [v for v in values if v is not None]
    std = statistics.stdev(present) if len(present) > 1 else 0.0
    text = f"{statistics.mean(present):.3f} ± {std:.3f}"
    return text + "†" if len(present) < len(values) else text


def parse_md(table: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = [line for line in table.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    header, body = split[0], split[2:]
    return header, {row[0]: row[1:] for row in body}


@dataclass
class Page:
    """What a report page holds, as a browser's parser sees it (attribute values unescaped)."""

    figures: list[dict[str, str]] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)  # rows of cell texts
    table_parts: list[list[str]] = field(default_factory=list)  # thead/tbody/tfoot per table
    h2: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    pre: list[str] = field(default_factory=list)
    details: list[dict[str, str]] = field(default_factory=list)
    handlers: list[str] = field(default_factory=list)  # on* attributes anywhere
    csp: str = ""


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._text: list[str] | None = None
        self._into = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.page.handlers += [k for k in values if k.startswith("on")]
        if tag == "figure":
            self.page.figures.append(values)
        elif tag == "table":
            self.page.tables.append([])
            self.page.table_parts.append([])
        elif tag in ("thead", "tbody", "tfoot"):
            self.page.table_parts[-1].append(tag)
        elif tag == "tr":
            self.page.tables[-1].append([])
        elif tag == "details":
            self.page.details.append(values)
        elif tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.page.csp = values["content"]
        if tag in ("td", "th", "h2", "script", "pre"):
            self._text, self._into = [], tag

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._text is None or tag != self._into:
            return
        text, self._text = "".join(self._text), None
        if tag in ("td", "th"):
            self.page.tables[-1][-1].append(text)
        elif tag == "h2":
            self.page.h2.append(text)
        elif tag == "script":
            self.page.scripts.append(text)
        else:
            self.page.pre.append(text)


def parse_page(text: str) -> Page:
    parser = _Parser()
    parser.feed(text)
    parser.close()
    return parser.page


def figures_of(page: Page, kind: str) -> list[dict[str, str]]:
    return [f for f in page.figures if f.get("class") == kind]


def test_read_results_types_and_order(results: Path) -> None:
    rows = read_results(results)
    assert len(rows) == len(synthetic_rows())
    first = rows[0]
    assert first == ResultRow("ds1", "enc_a", "enc_a", "absolute", 0, "accuracy", 0.4)
    assert not first.stitched
    na = [r for r in rows if r.value is None]
    assert na and all(r.variant == "absolute" and r.stitched for r in na)
    with pytest.raises(AttributeError):
        first.value = 0.5  # type: ignore[misc]


def test_summary_cells_match_hand_computed(results: Path) -> None:
    rows = read_results(results)
    for metric in METRICS:
        header, body = parse_md(summary_table(rows, metric))
        assert header == SUMMARY_HEADER
        assert list(body) == DATASETS
        variants = ["absolute", "cosine", "euclidean", "l1", "linf", "product:mlp_sum"]
        for d in DATASETS:
            got = [c.strip("*") for c in body[d]]
            assert got == [expected_cell(d, v, metric, True) for v in variants]


def test_literal_mean_and_sample_std(tmp_path: Path) -> None:
    rows = [
        ResultRow("tiny", "x", "y", "cosine", 0, "accuracy", 0.5),
        ResultRow("tiny", "x", "y", "cosine", 1, "accuracy", 0.7),
        ResultRow("tiny", "y", "x", "cosine", 0, "accuracy", 0.6),
        ResultRow("tiny", "y", "x", "cosine", 1, "accuracy", 0.8),
        ResultRow("tiny", "x", "y", "l1", 0, "accuracy", 0.4),
        ResultRow("tiny", "x", "x", "l1", 0, "accuracy", 0.9),
    ]
    _, body = parse_md(summary_table(rows))
    # mean 0.65; sample std sqrt((0.15² + 0.05² + 0.05² + 0.15²) / 3) = 0.1291
    assert body["tiny"] == ["**0.650 ± 0.129**", "0.400 ± 0.000"]
    _, ref = parse_md(summary_table(rows, stitched=False))
    assert ref["tiny"] == ["—", "0.900 ± 0.000"]


def test_na_rendering_and_partial_marker(results: Path) -> None:
    rows = read_results(results)
    # Only the cross-dimension pairs: every absolute stitched value is n/a.
    only_big = [r for r in rows if r.variant != "absolute" or "big" in (r.source, r.target)]
    _, body = parse_md(summary_table(only_big))
    assert body["ds1"][0] == "n/a"
    assert not any(re.search(r"\d", c) for c in [body["ds1"][0], body["ds2"][0]])
    # With the same-dimension pairs too, the mean is over applicable pairs and flagged.
    table = summary_table(rows)
    assert parse_md(table)[1]["ds1"][0].endswith("†")
    assert "† mean over the applicable pairs only" in table


def test_bold_best_stitched_cell(results: Path) -> None:
    rows = read_results(results)
    _, body = parse_md(summary_table(rows))
    bold = {d: [i for i, c in enumerate(cells) if c.startswith("**")] for d, cells in body.items()}
    assert bold == {"ds1": [5], "ds2": [1]}  # product (mlp_sum) in ds1, cosine in ds2
    assert body["ds1"][5].endswith("**")


def test_non_stitched_uses_only_same_encoder_pairs(results: Path) -> None:
    rows = read_results(results)
    header, body = parse_md(summary_table(rows, stitched=False))
    assert header[-1] == "Product (mlp_sum)"
    variants = ["absolute", "cosine", "euclidean", "l1", "linf", "product:mlp_sum"]
    for d in DATASETS:
        assert body[d] == [expected_cell(d, v, "accuracy", False) for v in variants]
        assert not any(c.startswith("**") for c in body[d])
    # Changing a stitched value does not move the reference table.
    changed = [
        ResultRow(r.dataset, r.source, r.target, r.variant, r.seed, r.metric, 0.0)
        if r.stitched
        else r
        for r in rows
    ]
    assert summary_table(changed, stitched=False) == summary_table(rows, stitched=False)
    assert summary_table(changed) != summary_table(rows)


def test_main_product_falls_back_and_extra_columns() -> None:
    rows = [
        ResultRow("d", "a", "b", "product:concat", 0, "accuracy", 0.5),
        ResultRow("d", "a", "b", "translation:affine", 0, "accuracy", 0.6),
        ResultRow("d", "a", "b", "cosine", 0, "accuracy", 0.4),
        ResultRow("d", "a", "b", "product:sum", 0, "accuracy", 0.3),
        ResultRow("d", "a", "b", "angular", 0, "accuracy", 0.2),
    ]
    header, body = parse_md(summary_table(rows))
    assert header == ["Dataset", "Cosine", "Product (concat)", "translation:affine", "angular"]
    assert body["d"] == ["0.400 ± 0.000", "0.500 ± 0.000", "**0.600 ± 0.000**", "0.200 ± 0.000"]
    header, _ = parse_md(summary_table(rows, product_variant="product:sum"))
    assert header[2] == "Product (sum)"


def test_ablation_columns(results: Path) -> None:
    rows = read_results(results)
    header, body = parse_md(ablation_table(rows))
    assert header == ["Dataset", "mlp_sum", "concat"]
    for d in DATASETS:
        expected = [expected_cell(d, v, "accuracy", True) for v in VARIANTS[5:]]
        assert [c.strip("*") for c in body[d]] == expected
        assert body[d][0].startswith("**")
    assert "No results" in ablation_table([r for r in rows if r.variant == "cosine"])


def test_pair_matrix_values_and_nans(results: Path) -> None:
    rows = read_results(results)
    encoders, matrix = pair_matrix(rows, "ds2", "absolute", "macro_f1")
    assert encoders == ENCODERS
    assert matrix.shape == (3, 3)
    for i, a in enumerate(ENCODERS):
        for j, b in enumerate(ENCODERS):
            values = [value_of("ds2", a, b, "absolute", s, "macro_f1") for s in SEEDS]
            if values[0] is None:
                assert math.isnan(matrix[i, j])
            else:
                assert matrix[i, j] == pytest.approx(statistics.mean(values))
    assert int(np.isnan(matrix).sum()) == 4
    _, cosine = pair_matrix(rows, "ds2", "cosine")
    assert not np.isnan(cosine).any()
    with pytest.raises(ValueError, match="no 'accuracy' results"):
        pair_matrix(rows, "ds2", "missing")


def test_save_heatmap_writes_png(results: Path, tmp_path: Path) -> None:
    rows = read_results(results)
    out = save_heatmap(rows, "ds1", "absolute", tmp_path / "h" / "abs.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in out.parent.iterdir()] == ["abs.png"]


def test_write_report_files(results: Path) -> None:
    folder = results.parent
    (folder / "config.json").write_text('{"name": "quick", "seeds": [0, 1]}', encoding="utf-8")
    page = write_report(folder)
    assert page == folder / "report.html"
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    for needle in (
        "## Accuracy",
        "## Macro F1",
        "Non-stitched reference",
        "ablation",
        "How to read",
        expected_cell("ds2", "l1", "macro_f1", True),
    ):
        assert needle in summary
    heatmaps = sorted(p.name for p in (folder / "heatmaps").iterdir())
    expected = sorted(
        f"{d}__{v.replace(':', '-')}__accuracy.png" for d in DATASETS for v in VARIANTS
    )
    assert heatmaps == expected
    assert all((folder / "heatmaps" / n).read_bytes()[:8] == PNG_MAGIC for n in heatmaps)

    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)
    assert "http://" not in text and "https://" not in text
    # one headline per dataset, one grid of heatmaps per (dataset, metric)
    images = len(DATASETS) * (1 + len(METRICS))
    assert text.count('<img src="data:image/png;base64,') == images
    assert "<link" not in text and text.count("<script") == 1  # the page's own script only
    assert "name: quick" in text  # the config, as YAML
    assert '<table class="sortable">' in text and "<strong>" in text


def test_html_escapes_malicious_names(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    rows = [
        [evil, "enc_a", evil, "cosine", 0, "accuracy", 0.5],
        [evil, evil, "enc_a", "cosine", 0, "accuracy", 0.6],
        [evil, evil, evil, 'product:<img src=x onerror="y">', 0, "accuracy", 0.7],
    ]
    folder = tmp_path / "evil"
    write_csv(folder / "results.csv", rows)
    (folder / "config.json").write_text('{"note": "</pre><script>bad()</script>"}')
    text = write_report(folder).read_text(encoding="utf-8")
    page = parse_page(text)
    assert page.scripts == [SORT_SCRIPT]  # no script but the page's own
    assert "<img src=x" not in text
    assert "&lt;script&gt;" in text
    assert [f["data-dataset"] for f in page.figures if f.get("class") == "headline"] == [evil]
    assert page.handlers == []
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    assert "<script" not in summary
    names = [p.name for p in (folder / "heatmaps").iterdir()]
    assert names and all(re.fullmatch(r"[A-Za-z0-9_.-]+", n) for n in names)


def test_report_is_deterministic_and_atomic(results: Path) -> None:
    folder = results.parent
    write_report(folder)
    first = [(folder / name).read_bytes() for name in ("summary.md", "report.html")]
    write_report(folder)
    assert [(folder / name).read_bytes() for name in ("summary.md", "report.html")] == first
    leftovers = [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []
    assert sorted(p.name for p in folder.iterdir()) == [
        "heatmaps",
        "report.html",
        "results.csv",
        "summary.md",
    ]


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    from latentbridge import _files

    monkeypatch.setattr(_files.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        _files.write_bytes_atomic(tmp_path / "x.md", b"data")
    assert list(tmp_path.iterdir()) == []


def test_order_follows_first_appearance(results: Path, tmp_path: Path) -> None:
    rows = synthetic_rows()
    reordered = [r for r in rows if r[0] == "ds2"] + [r for r in rows if r[0] == "ds1"]
    rows2 = read_results(write_csv(tmp_path / "r2.csv", reordered))
    assert list(parse_md(summary_table(rows2))[1]) == ["ds2", "ds1"]


@pytest.mark.parametrize(
    ("header", "row", "line", "message"),
    [
        (report.COLUMNS[:-1], ["d", "a", "b", "cosine", 0, "accuracy"], 1, "missing column"),
        (report.COLUMNS, ["d", "a", "b", "cosine", 0, "accuracy", "high"], 3, "not a number"),
        (report.COLUMNS, ["d", "a", "b", "cosine", 0, "accuracy", "1.5"], 3, r"number in \[0, 1\]"),
        (report.COLUMNS, ["d", "a", "b", "cosine", 0, "accuracy", "nan"], 3, r"number in \[0, 1\]"),
        (report.COLUMNS, ["d", "a", "b", "cosine", 0, "mse", "-0.1"], 3, r"mse .*\[0, 1\]"),
        (report.COLUMNS, ["d", "a", "b", "cosine", 0, "psnr", "-3"], 3, r"psnr .*\[0, inf\]"),
        (report.COLUMNS, ["d", "a", "b", "l1", 0, "distance_pearson", "1.2"], 3, r"\[-1, 1\]"),
        (report.COLUMNS, ["d", "a", "b", "cosine", "x", "accuracy", "0.5"], 3, "seed"),
        (report.COLUMNS, ["d", "a", "b", "cosine", 0, "accuracy"], 3, "expected 7 fields"),
        (report.COLUMNS, ["d", "a", "b", "cosine", 1, "accuracy", "0.5"], 3, "duplicate"),
    ],
)
def test_bad_csv_raises_with_file_and_line(
    tmp_path: Path, header, row, line: int, message: str
) -> None:
    good = ["d", "a", "b", "cosine", 1, "accuracy", "0.5"]
    path = write_csv(tmp_path / "bad.csv", [good[: len(header)], row], header=header)
    with pytest.raises(ValueError, match=message) as info:
        read_results(path)
    assert str(path) in str(info.value)
    assert f"line {line}" in str(info.value)


def test_write_report_rejects_empty_results(tmp_path: Path) -> None:
    write_csv(tmp_path / "results.csv", [])
    with pytest.raises(ValueError, match="no result rows"):
        write_report(tmp_path)


def test_metric_ranges_accept_their_own_values(tmp_path: Path) -> None:
    """PSNR above 1 and negative correlations are valid values of their metrics."""
    rows = [
        ["d", "a", "b", "cosine", 0, "psnr", "23.5"],
        ["d", "a", "b", "cosine", 0, "distance_pearson", "-0.25"],
        ["d", "a", "b", "cosine", 0, "custom_score", "-7"],
    ]
    values = [r.value for r in read_results(write_csv(tmp_path / "ok.csv", rows))]
    assert values == [23.5, -0.25, -7.0]


def test_lower_is_better_bolds_the_smallest_mse(tmp_path: Path) -> None:
    rows = [
        ["d", "a", "b", "absolute", 0, "mse", "0.09"],
        ["d", "a", "b", "cosine", 0, "mse", "0.02"],
        ["d", "a", "b", "linf", 0, "mse", "0.05"],
    ]
    table = summary_table(read_results(write_csv(tmp_path / "mse.csv", rows)), "mse")
    assert "**0.020 ± 0.000**" in table
    assert "**0.090" not in table and "**0.050" not in table


def _png(path: Path) -> Path:
    from latentbridge._files import write_bytes_atomic

    # a 1x1 PNG is enough: the report embeds the file's bytes
    data = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
    write_bytes_atomic(path, data)
    return path


def test_reconstruction_report_sections_grids_and_lower_is_better(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    rows = []
    for dec in ("ae-0", "ae-1"):
        for enc in ("ae-0", "ae-1"):
            for variant, mse in (("absolute", 0.2), ("cosine", 0.05)):
                value = mse / 2 if dec == enc else mse
                rows.append(["fmnist", dec, enc, variant, 0, "mse", f"{value:.6f}"])
                rows.append(
                    ["fmnist", dec, enc, variant, 0, "psnr", f"{10 * math.log10(1 / value):.6f}"]
                )
    write_csv(folder / "results.csv", rows)
    (folder / "config.json").write_text('{"name": "r", "task": "reconstruction"}')
    page = write_report(folder).read_text()
    assert "<h2>Image grids" not in page  # no grids/ folder: no section
    _png(folder / "grids" / "fmnist__cosine.png")
    page = write_report(folder).read_text()
    assert "<h2>Image grids" in page and "fmnist — cosine" in page
    summary = (folder / "summary.md").read_text()
    assert "## MSE" in summary and "## PSNR (dB)" in summary
    assert "**0.050 ± 0.000**" in summary  # the smallest stitched MSE is the bold one
    assert "decoder" in summary  # the reconstruction note says which column is the decoder
    assert sorted(p.name for p in (folder / "heatmaps").iterdir()) == [
        "fmnist__absolute__mse.png",
        "fmnist__cosine__mse.png",
    ]


def test_similarity_report_writes_pair_tables_and_charts(tmp_path: Path) -> None:
    folder = tmp_path / "sim"
    rows = []
    for a, b in (("x", "y"), ("y", "x")):
        for variant, value in (("absolute", 0.4), ("cosine", 0.9), ("product", 0.7)):
            for seed in (0, 1):
                rows.append(["ds", a, b, variant, seed, "linear_cka", f"{value:.6f}"])
                rows.append(["ds", a, b, variant, seed, "distance_pearson", f"{-value:.6f}"])
    write_csv(folder / "results.csv", rows)
    (folder / "config.json").write_text('{"name": "s", "task": "similarity"}')
    page = write_report(folder).read_text()
    summary = (folder / "summary.md").read_text()
    assert summary.startswith("# Latent similarity report")
    assert "### ds: every pair" in summary and "Non-stitched" not in summary
    assert sorted(p.name for p in (folder / "charts").iterdir()) == [
        "ds__distance_pearson.png",
        "ds__linear_cka.png",
    ]
    assert "Similarity by invariance class" in page


# -- names are drawn as plain text, never as mathtext ------------------------------------------

MATH_NAMES = ["$x^$", r"\frac{1}{", r"$\frac{a}{b}$", "a$b", r"a\$b$", "$$", "%s_^&{}#~"]


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="$\\x^{}_ab", max_size=12) | st.sampled_from(MATH_NAMES))
def test_plain_text_is_drawn_exactly_as_written(name: str) -> None:
    from matplotlib.text import Text

    from latentbridge._plotting import plain_text

    # what matplotlib draws: (text after its own unescaping, whether it is mathtext)
    shown, is_math = Text()._preprocess_math(plain_text(name))
    assert (shown, is_math) == (name, False)


def test_a_mathtext_name_breaks_a_raw_matplotlib_label() -> None:
    """Negative control: without plain_text, ``$x^$`` ends the rendering."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    fig.add_subplot(1, 1, 1).set_title("$x^$")
    with pytest.raises(ValueError):
        fig.savefig(io.BytesIO(), format="png")


def test_reports_render_names_that_look_like_mathtext(tmp_path: Path) -> None:
    a, b = MATH_NAMES[0], MATH_NAMES[1]
    rows = [[MATH_NAMES[2], a, b, v, 0, "accuracy", 0.5] for v in ("cosine", "$product:x^$")] + [
        [MATH_NAMES[2], b, a, v, 0, "accuracy", 0.6] for v in ("cosine", "$product:x^$")
    ]
    folder = tmp_path / "classification"
    write_csv(folder / "results.csv", rows)
    assert write_report(folder).is_file()
    assert len(list((folder / "heatmaps").glob("*.png"))) == 2
    folder = tmp_path / "similarity"
    sim = [[r"$\frac{$", x, y, "$cos^$", 0, "linear_cka", 0.5] for x, y in ((a, b), (b, a))]
    write_csv(folder / "results.csv", sim)
    (folder / "config.json").write_text('{"name": "s", "task": "similarity"}')
    assert write_report(folder).is_file()
    assert [p.suffix for p in (folder / "charts").iterdir()] == [".png"]


def test_grids_and_profiles_render_names_that_look_like_mathtext(tmp_path: Path) -> None:
    import torch

    from latentbridge.analysis import InvarianceProfile
    from latentbridge.experiments.tasks.reconstruction import write_grid

    images = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    grid = write_grid(tmp_path / "grid.png", [("$x^$", images), (r"\frac{", images)], "$a^$")
    assert grid.read_bytes().startswith(PNG_MAGIC)
    profile = InvarianceProfile(
        metric="$cka^$",
        similarities={"$x^$": 0.5, r"\frac{1}{": 0.25},
        map_errors={"$ortho^$": 0.1, "none": None},
        notes={},
        num_anchors=4,
        num_heldout=4,
    )
    out = profile.plot(tmp_path / "figs" / "profile.png", title="$x^$ vs $y_")
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in (tmp_path / "figs").iterdir()] == ["profile.png"]  # atomic
    assert profile.plot(tmp_path / "figs" / "p.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match=r"path must end in an image format .*x\.docx'"):
        profile.plot(tmp_path / "x.docx")


# -- report.html embeds only the grids the run wrote -------------------------------------------


def test_report_embeds_only_regular_png_files_of_the_run(tmp_path: Path) -> None:
    import base64

    folder = tmp_path / "rec"
    write_csv(folder / "results.csv", [["fmnist", "m0", "m1", "cosine", 0, "mse", 0.1]])
    (folder / "config.json").write_text('{"name": "r", "task": "reconstruction"}')
    own = _png(folder / "grids" / "fmnist__cosine.png")
    secret = _png(tmp_path / "outside" / "secret.png")
    secret.write_bytes(secret.read_bytes() + b"SECRET-OUTSIDE-THE-RUN")
    try:
        (folder / "grids" / "leak.png").symlink_to(secret)
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available here")
    (folder / "grids" / "fake.png").write_text("#!/bin/sh\necho not a png\n")
    with pytest.warns(UserWarning) as caught:
        page = write_report(folder).read_text()
    reasons = sorted(str(w.message).split(": ", 1)[-1] for w in caught)
    assert reasons == ["a symbolic link", "not a PNG file"]
    assert base64.b64encode(own.read_bytes()).decode() in page  # the run's own grid
    assert base64.b64encode(secret.read_bytes()).decode() not in page
    assert "leak" not in page and "fake" not in page
    # a grids/ folder that is itself a link out of the run folder is not read
    for p in (folder / "grids").iterdir():
        p.unlink()
    (folder / "grids").rmdir()
    (folder / "grids").symlink_to(secret.parent, target_is_directory=True)
    with pytest.warns(UserWarning, match="is a symbolic link"):
        page = write_report(folder).read_text()
    assert "<h2>Image grids" not in page


# -- report.html: the headline, the heatmaps, the tables, the config ----------------------------


ACCURACY = MetricInfo("accuracy", "Accuracy", 0.0, 1.0)
MSE = MetricInfo("mse", "MSE", 0.0, 1.0, higher_is_better=False)
# the stitched means of the synthetic set, best first
EXPECTED_BEST = {"ds1": "product:mlp_sum", "ds2": "cosine"}
# a config.json with every kind of value; it states the classes of ds1, not of ds2
CONFIG = {
    "name": "quick",
    "description": 'Two lines\nof <b>text</b> & a "quote": ok\n',
    "datasets": [{"name": "ds1", "synthetic": {"num_classes": 8}, "encoders": ["a", "b"]}],
    "seeds": [0, 1],
    "note": "</pre></code></details><script>bad()</script>",
    "unicode": "L∞ ≠ λ",
    "empty": None,
    "ratio": 0.5,
    "flag": True,
}


def consistency_rows() -> list[list[object]]:
    """The anchor consistency of every stitched (pair, variant, seed) of the synthetic set."""
    return [
        [d, a, b, v, s, "anchor_consistency", 0.5 + 0.1 * ENCODERS.index(b) + 0.01 * s]
        for d in DATASETS
        for a in ENCODERS
        for b in ENCODERS
        if a != b
        for v in VARIANTS
        for s in SEEDS
    ]


@dataclass(frozen=True)
class Rendered:
    folder: Path
    text: str
    page: Page


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The report of the synthetic results, with their anchor consistency and :data:`CONFIG`,
    written once for the module."""
    import json

    folder = tmp_path_factory.mktemp("rendered")
    write_csv(folder / "results.csv", synthetic_rows() + consistency_rows())
    (folder / "config.json").write_text(json.dumps(CONFIG), encoding="utf-8")
    text = write_report(folder).read_text(encoding="utf-8")
    return Rendered(folder, text, parse_page(text))


def stitched_mean(dataset: str, variant: str, metric: str = "accuracy") -> float | None:
    values = [
        value_of(dataset, a, b, variant, s, metric)
        for a in ENCODERS
        for b in ENCODERS
        for s in SEEDS
        if a != b
    ]
    present = [v for v in values if v is not None]
    return statistics.mean(present) if present else None


def test_headline_orders_the_variants_best_first(results: Path) -> None:
    rows = read_results(results)
    for dataset, best in EXPECTED_BEST.items():
        item = headline(rows, dataset, ACCURACY)
        means = {v: stitched_mean(dataset, v) for v in VARIANTS}
        assert [b.variant for b in item.bars] == sorted(VARIANTS, key=lambda v: -means[v])
        assert item.best is not None and item.best.variant == best
        assert item.best.stitched.mean == pytest.approx(means[best])
        reference = [value_of(dataset, e, e, best, s, "accuracy") for e in ENCODERS for s in SEEDS]
        assert item.best.reference.mean == pytest.approx(statistics.mean(reference))
    with pytest.raises(ValueError, match="no 'accuracy' results for dataset 'nope'"):
        headline(rows, "nope", ACCURACY)


def _mse_rows() -> list[ResultRow]:
    values = {"absolute": 0.09, "cosine": 0.02, "linf": 0.05}
    return [
        ResultRow("d", a, b, v, 0, "mse", x if a != b else x / 4)
        for v, x in values.items()
        for a, b in (("a", "b"), ("b", "a"), ("a", "a"))
    ]


def test_headline_follows_lower_is_better() -> None:
    rows = _mse_rows()
    item = headline(rows, "d", MSE)
    assert [b.variant for b in item.bars] == ["cosine", "linf", "absolute"]
    assert item.best is not None and item.best.variant == "cosine"
    # negative control: the same rows read as higher-is-better put the largest first
    flipped = headline(rows, "d", MetricInfo("mse", "MSE", 0.0, 1.0))
    assert flipped.best is not None and flipped.best.variant == "absolute"


def test_headline_puts_variants_without_a_value_last() -> None:
    rows = [
        ResultRow("d", "a", "b", "absolute", 0, "accuracy", None),
        ResultRow("d", "a", "b", "cosine", 0, "accuracy", 0.4),
        ResultRow("d", "a", "b", "l1", 0, "accuracy", 0.4),  # a tie keeps the first appearance
    ]
    item = headline(rows, "d", ACCURACY)
    assert [b.variant for b in item.bars] == ["cosine", "l1", "absolute"]
    nothing = headline(rows[:1], "d", ACCURACY)
    assert nothing.best is None


def _count_colour(png: bytes, hex_colour: str) -> int:
    import io

    from matplotlib.image import imread

    pixels = (imread(io.BytesIO(png), format="png")[..., :3] * 255).round().astype(int)
    rgb = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    return int(np.all(pixels == rgb, axis=-1).sum())


def test_headline_chart_highlights_the_best_bar(results: Path) -> None:
    from latentbridge.experiments.headline import headline_png

    rows = read_results(results)
    best = _count_colour(headline_png(headline(rows, "ds1", ACCURACY, chance=0.1)), BEST_COLOUR)
    assert best > 1000  # the best bar (the legend's patch alone is a few dozen pixels)
    nothing = [ResultRow("d", "a", "b", "cosine", 0, "accuracy", None)]
    assert _count_colour(headline_png(headline(nothing, "d", ACCURACY)), BEST_COLOUR) < 200


def test_report_opens_with_a_headline_per_dataset(rendered: Rendered) -> None:
    page = rendered.page
    assert page.h2[0] == "At a glance: Accuracy"
    found = {f["data-dataset"]: f for f in figures_of(page, "headline")}
    assert list(found) == DATASETS
    assert {d: f["data-best"] for d, f in found.items()} == EXPECTED_BEST
    assert all(f["data-metric"] == "accuracy" for f in found.values())
    glance = page.tables[0]
    assert glance[0][:3] == ["Dataset", "Metric", "Best stitched"]
    assert {row[0]: row[2] for row in glance[1:]} == EXPECTED_BEST


def test_headline_of_a_lower_is_better_task(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    rows = [
        [r.dataset, r.source, r.target, r.variant, r.seed, r.metric, r.value] for r in _mse_rows()
    ]
    write_csv(folder / "results.csv", rows)
    (folder / "config.json").write_text('{"name": "r", "task": "reconstruction"}')
    page = parse_page(write_report(folder).read_text(encoding="utf-8"))
    (figure,) = figures_of(page, "headline")
    assert (figure["data-metric"], figure["data-best"]) == ("mse", "cosine")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"name": "synthetic", "synthetic": {"num_classes": 4}}, 4),
        ({"name": "wordnet", "options": {"num_classes": 10, "per_class": 200}}, 10),
        ({"name": "wordnet", "options": {"num_classes": None}}, 41),  # all its classes
        ({"name": "digits", "options": {"seed": 3}}, 10),  # the registry's count
        ({"name": "cifar100", "options": {"label": "coarse"}}, None),  # picks the classes
        ({"name": "not-registered", "options": {}}, None),
        ({"name": "other-name", "options": {"num_classes": 3}}, None),  # not this dataset
    ],
)
def test_num_classes_from_the_config(entry: dict, expected: int | None) -> None:
    dataset = "other" if entry["name"] == "other-name" else entry["name"]
    assert report.num_classes({"datasets": [entry]}, dataset) == expected


def test_chance_level_is_one_over_the_classes_for_accuracy_only() -> None:
    assert chance_level("accuracy", 4) == 0.25
    assert chance_level("accuracy", None) is None
    assert chance_level("macro_f1", 4) is None and chance_level("mse", 4) is None


def test_headline_caption_states_the_chance_or_why_there_is_none(rendered: Rendered) -> None:
    captions = re.findall(r'<figure class="headline".*?alt="([^"]*)"', rendered.text)
    assert [c.split(":")[0] for c in captions] == DATASETS
    assert "Dashed line: chance, 1/8 = 0.125." in captions[0]  # config.json states ds1's classes
    assert "No chance line: the number of classes of ds2 is not known" in captions[1]
    assert "Dashed line" not in captions[1]


def test_heatmaps_share_one_colour_scale(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = read_results(results)
    grid = heatmaps_module.heatmap_grid(rows, "ds1", ACCURACY)
    means = [
        statistics.mean(values)
        for v in VARIANTS
        for a in ENCODERS
        for b in ENCODERS
        if None not in (values := [value_of("ds1", a, b, v, s, "accuracy") for s in SEEDS])
    ]
    assert (grid.vmin, grid.vmax) == (pytest.approx(min(means)), pytest.approx(max(means)))
    # the shared scale is not any one panel's own
    own = [(np.nanmin(m), np.nanmax(m)) for m in grid.matrices]
    assert all(scale != (grid.vmin, grid.vmax) for scale in own)
    # every panel is drawn on the shared scale, with one colour bar
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    drawn: list[tuple[float, float]] = []
    bars: list[object] = []
    imshow, colorbar = Axes.imshow, Figure.colorbar
    monkeypatch.setattr(
        Axes,
        "imshow",
        lambda ax, *a, **k: drawn.append((k["vmin"], k["vmax"])) or imshow(ax, *a, **k),
    )
    monkeypatch.setattr(
        Figure, "colorbar", lambda fig, *a, **k: bars.append(a) or colorbar(fig, *a, **k)
    )
    assert heatmaps_module.grid_png(grid)[:8] == PNG_MAGIC
    assert drawn == [(grid.vmin, grid.vmax)] * len(VARIANTS) and len(bars) == 1


def test_report_heatmaps_are_one_grid_per_dataset_and_metric(rendered: Rendered) -> None:
    rows = read_results(rendered.folder / "results.csv")
    found = figures_of(rendered.page, "heatmaps")
    assert [(f["data-dataset"], f["data-metric"]) for f in found] == [
        (d, m) for m in METRICS for d in DATASETS
    ]
    for f in found:
        metric = report.METRICS[f["data-metric"]]
        grid = heatmaps_module.heatmap_grid(rows, f["data-dataset"], metric)
        assert (float(f["data-vmin"]), float(f["data-vmax"])) == (grid.vmin, grid.vmax)


def test_shared_scale_of_degenerate_inputs() -> None:
    nan = np.full((2, 2), np.nan)
    assert heatmaps_module.shared_scale([nan]) == (0.0, 1.0)
    assert heatmaps_module.shared_scale([np.full((1, 1), 0.3), nan]) == (-0.2, 0.8)
    assert heatmaps_module.shared_scale([np.array([[0.1, 0.5]]), np.array([[0.9]])]) == (0.1, 0.9)


def test_config_is_collapsed_yaml_at_the_bottom(rendered: Rendered, tmp_path: Path) -> None:
    import yaml

    page = rendered.page
    assert page.h2[-1] == "Configuration (config.json, as YAML)"
    assert page.details == [{}]  # one <details>, closed (no `open`)
    (config_text,) = page.pre  # the only preformatted text of the page
    assert yaml.safe_load(config_text) == CONFIG
    assert "description: |" in config_text  # a multi-line string as a literal block
    assert "<script>bad()" not in rendered.text and "</details><script" not in rendered.text
    # without config.json: no configuration block
    folder = tmp_path / "bare"
    rows = [["d", a, b, "cosine", 0, "accuracy", 0.5] for a, b in ("xy", "yx")]
    write_csv(folder / "results.csv", rows)
    page = parse_page(write_report(folder).read_text(encoding="utf-8"))
    assert page.details == [] and page.pre == [] and not page.h2[-1].startswith("Configuration")


def test_to_html_is_a_sortable_table_with_numeric_keys() -> None:
    table = Table(
        ["Dataset", "A", "B"],
        [[Cell("d<1>"), Cell("0.500 ± 0.010†", bold=True), Cell("n/a")]],
        notes=["a note"],
        footer=[[Cell("mean"), Cell("-1.5e-3 ± 0.000"), Cell("—")]],
    )
    text = to_html(table)
    assert text.startswith('<table class="sortable"><thead><tr><th scope="col">Dataset</th>')
    assert '<th scope="row">d&lt;1&gt;</th>' in text
    assert '<td data-value="0.500"><strong>0.500 ± 0.010†</strong></td>' in text
    assert "<td>n/a</td>" in text and "<td>—</td>" in text  # no key: sorted last
    assert '<tfoot><tr><th scope="row">mean</th><td data-value="-1.5e-3">' in text
    assert text.index("</tbody>") < text.index("<tfoot>")
    assert '<p class="note">a note</p>' in text


def test_every_table_of_a_stitching_report_is_an_html_table(rendered: Rendered) -> None:
    page = rendered.page
    summary = (rendered.folder / "summary.md").read_text(encoding="utf-8")
    # the glance table, then each of summary.md's tables
    assert len(page.tables) == 1 + summary.count("\n|:---|")
    assert rendered.text.count('<table class="sortable">') == len(page.tables)
    assert len(page.pre) == 1 and "name: quick" in page.pre[0]  # only the config
    stitched = page.tables[1]
    assert stitched[0] == SUMMARY_HEADER
    assert stitched[1][2] == expected_cell("ds1", "cosine", "accuracy", True)


def test_similarity_pair_tables_are_html_tables(tmp_path: Path) -> None:
    folder = tmp_path / "sim"
    rows = []
    for a, b in (("x", "y"), ("y", "x"), ("x", "z"), ("z", "x")):
        for variant, value in (("absolute", 0.4), ("cosine", 0.9)):
            rows.append(["ds", a, b, variant, 0, "linear_cka", f"{value:.6f}"])
    write_csv(folder / "results.csv", rows)
    (folder / "config.json").write_text('{"name": "s", "task": "similarity"}')
    page = parse_page(write_report(folder).read_text(encoding="utf-8"))
    assert page.pre == [page.pre[0]] and "task: similarity" in page.pre[0]  # only the config
    pairs = next(t for t in page.tables if t[0][0] == "Encoder pair")
    assert [row[0] for row in pairs] == ["Encoder pair", "x ↔ y", "x ↔ z", "mean over pairs"]
    assert page.table_parts[page.tables.index(pairs)] == ["thead", "tbody", "tfoot"]
    assert {f["data-best"] for f in figures_of(page, "headline")} == {"cosine"}


def test_the_page_runs_only_its_own_script(rendered: Rendered) -> None:
    page = rendered.page
    assert page.scripts == [SORT_SCRIPT]
    digest = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page.csp
    assert "default-src 'none'" in page.csp and "unsafe-inline'; script" in page.csp
    assert page.handlers == []


def test_stitchability_scatter_plots_are_on_the_page(rendered: Rendered) -> None:
    assert len(figures_of(rendered.page, "scatter")) == len(DATASETS) * len(METRICS)
    assert "Stitchability: Accuracy against anchor consistency" in rendered.page.h2


def test_the_glance_table_sorts_by_the_signed_gap() -> None:
    """The difference column leads with stitched − reference, so sorting it ranks the gaps
    (a word-only "0.400 worse" and "0.100 better" would sort as 0.4 > 0.1)."""
    from latentbridge.experiments.headline import glance_table
    from latentbridge.experiments.tables import to_html

    rows = [
        ResultRow(d, a, b, "cosine", 0, "accuracy", x if a != b else ref)
        for d, x, ref in (("worse", 0.4, 0.8), ("better", 0.6, 0.5), ("near", 0.7, 0.75))
        for a, b in (("a", "b"), ("a", "a"))
    ]
    items = [headline(rows, d, ACCURACY) for d in ("worse", "better", "near")]
    html_text = to_html(glance_table(items))
    keys = [float(k) for k in re.findall(r'data-value="([-+.\d]+)">[-+.\d]+ \(', html_text)]
    assert keys == pytest.approx([-0.4, 0.1, -0.05])
    assert "-0.400 (worse)" in html_text and "+0.100 (better)" in html_text


def test_a_run_without_stitched_pairs_says_so() -> None:
    from latentbridge.experiments.headline import caption

    rows = [ResultRow("d", "a", "a", v, 0, "accuracy", 0.5) for v in ("cosine", "l1")]
    item = headline(rows, "d", ACCURACY)
    assert item.best is None
    text = caption(item, ("train encoder", "test encoder"))
    assert "no stitched pair" in text and "non-stitched values" in text
    empty = headline([ResultRow("d", "a", "b", "cosine", 0, "accuracy", None)], "d", ACCURACY)
    assert "no variant has an applicable Accuracy" in caption(empty, ("a", "b"))
