"""The console script: the invariance table (and the README's copy of it), the quickstart."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import latentbridge as lb
from latentbridge.cli import invariance_table, main
from latentbridge.transformations import TRANSFORMATIONS

README = Path(__file__).resolve().parents[1] / "README.md"


def _builtin_table() -> str:
    """The table restricted to the built-ins (the tests register extra projections)."""
    lines = invariance_table().splitlines()
    return "\n".join(line for line in lines if "test_" not in line)


def test_table_is_generated_from_the_registry() -> None:
    rows = {line.split(" | ")[0].strip("| "): line for line in invariance_table().splitlines()[2:]}
    assert set(rows) == set(lb.projections.available())
    for name, line in rows.items():
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        declared = lb.projections.get(name).invariances
        assert cells == ["✓" if k in declared else "·" for k in TRANSFORMATIONS], name


def test_readme_shows_the_current_table() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- invariances:begin -->\n(.*?)\n<!-- invariances:end -->", text, re.S)
    assert block is not None
    assert block.group(1) == _builtin_table()


def test_effective_table_follows_the_normalisation() -> None:
    table = invariance_table("center", "standardize")
    cosine = next(line for line in table.splitlines() if line.startswith("| cosine |"))
    assert cosine.split(" | ")[1:3] == ["center", "standardize"]
    assert cosine.count("✓") == len(lb.projections.effective_invariances("cosine", "center"))


def test_verified_table_has_no_contradiction() -> None:
    table = invariance_table(verify=True)
    assert " !" not in table
    assert re.search(r"✓ \de-1[5-7]", table) and re.search(r"· \de-0[0-2]", table)


def test_every_normalisation_lists_all_combinations() -> None:
    lines = invariance_table(every_normalization=True).splitlines()
    combinations = len(lb.normalization.ABSOLUTE) * len(lb.normalization.RELATIVE)
    assert len(lines) == 2 + len(lb.projections.available()) * combinations


def test_main_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invariances"]) == 0
    assert capsys.readouterr().out.strip() == invariance_table()


def test_console_script_runs_in_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "latentbridge", "invariances"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == _builtin_table()


def test_bad_arguments_exit_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["invariances", "--normalization", "centre"])
    assert exc.value.code == 2
    assert "invalid choice: 'centre'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["quickstart", "--anchors", "100000", "--quiet"])
    assert exc.value.code == 2
    assert "k=100000" in capsys.readouterr().err


def test_quickstart_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["quickstart", "--samples", "1200", "--anchors", "64", "--epochs", "6", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0] and cells[2][:1].isdigit():
            rows[cells[0]] = (cells[1], float(cells[2]), float(cells[3]))
    assert set(rows) == {"absolute", "cosine", "euclidean", "l1", "linf", "product (mlp_sum)"}
    assert rows["euclidean"][0] == "yes" and rows["absolute"][0] == "no"
    # The invariant projection stitches without loss; absolute latents fall towards chance.
    assert rows["euclidean"][2] == pytest.approx(rows["euclidean"][1], abs=0.01)
    assert rows["absolute"][1] > 0.6 and rows["absolute"][2] < 0.3


def test_datasets_and_encoders_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for spec in lb.data.available():
        assert f"| {spec.name} | {spec.modality} |" in out
    assert "| fashion-mnist | vision | 10 | train 60,000, test 10,000 | yes |" in out
    assert "| cifar10 | vision | 10 |" in out and "binary version" in out
    assert main(["encoders", "--modality", "vision"]) == 0
    out = capsys.readouterr().out
    assert "| open-nsfw-resnet50 | vision | 1024 | yes |" in out
    assert "minilm-l6" not in out and "timm:<id>" in out


def test_encode_end_to_end_through_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    args = [
        "encode",
        "--dataset",
        "drug-reviews",
        "--encoder",
        "glove-50d",
        "--split",
        "test",
        "--cache",
        str(tmp_path / "cache"),
        "--quiet",
    ]
    assert main([*args, "--out", str(tmp_path / "a.npy")]) == 0
    assert "379 x 50 float32 latents" in capsys.readouterr().out
    entries = list((tmp_path / "cache" / "embeddings").glob("*/*/manifest.json"))
    assert len(entries) == 1
    stamp = entries[0].stat().st_mtime_ns
    assert main([*args, "--out", str(tmp_path / "b.npy")]) == 0  # served from the cache
    assert entries[0].stat().st_mtime_ns == stamp
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_encode_reports_bad_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = ["--cache", str(tmp_path), "--quiet"]
    with pytest.raises(SystemExit) as exc:
        main(["encode", "--dataset", "digits", "--encoder", "glove-50d", *cache])
    assert exc.value.code == 2
    assert "encodes text but dataset 'digits' is vision" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["encode", "--dataset", "karate", "--split", "full", "--encoder", "glove-50d", *cache])
    assert "node features are given" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["encode", "--dataset", "digits", "--encoder", "x", "--option", "nokey", *cache])
    assert "KEY=VALUE" in capsys.readouterr().err
