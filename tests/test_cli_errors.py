"""User errors through the CLI: exit status 2, one line on stderr naming the culprit, no
traceback, and nothing written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from latentbridge.cli import main
from latentbridge.experiments import runner, spaces

#: The tiny synthetic config of the stitching tests, shrunk further: one projection, one seed.
TINY = {
    "name": "tiny",
    "datasets": [
        {
            "name": "synthetic",
            "synthetic": {
                "num_samples": 400,
                "dim": 8,
                "num_classes": 4,
                "transformations": ["orthogonal"],
            },
        }
    ],
    "anchors": {"num": 16},
    "variants": {"absolute": False, "projections": ["cosine"], "aggregations": []},
    "head": {"hidden": 8, "epochs": 1},
    "seeds": [0],
}


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``latentbridge argv``, expect a user error, return its one line of message."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    assert exc.value.code == 2, captured.err
    assert "Traceback" not in captured.out + captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert re.match(r"latentbridge( [a-z]+)?: error: ", lines[0]), lines[0]
    return lines[0]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _yaml(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


@pytest.fixture
def embeddings(tmp_path: Path) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x @ np.linalg.qr(rng.standard_normal((6, 6)))[0])
    return str(tmp_path / "a.npy"), str(tmp_path / "b.npy")


# -- unknown encoders -------------------------------------------------------------------------


def test_encode_with_an_unknown_encoder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, cache = tmp_path / "x.npy", tmp_path / "cache"
    argv = ["encode", "--dataset", "digits", "--encoder", "nosuch", "--quiet"]
    line = _fails(capsys, [*argv, "--cache", str(cache), "--out", str(out)])
    assert "unknown encoder name 'nosuch'" in line and "glove-50d" in line
    assert not out.exists() and not cache.exists()


def test_a_config_with_an_unknown_encoder_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {**TINY, "datasets": [{"name": "drug-reviews", "encoders": ["glove-50d", "nosuch"]}]}
    out = tmp_path / "run"
    line = _fails(capsys, ["run", _yaml(tmp_path / "c.yaml", config), "--out", str(out)])
    assert "'datasets[0].encoders'" in line and "'nosuch'" in line
    assert not out.exists()


def test_a_config_whose_dataset_is_missing_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTBRIDGE_DATA", str(tmp_path / "no-data"))  # no MNIST files there
    config = {**TINY, "datasets": [{"name": "mnist", "encoders": ["open-nsfw-resnet50"]}]}
    out = tmp_path / "run"
    line = _fails(capsys, ["run", _yaml(tmp_path / "c.yaml", config), "--out", str(out)])
    assert "'datasets[0].name'" in line and "'mnist' is not available here" in line
    assert not out.exists()


# -- output paths -----------------------------------------------------------------------------


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def test_run_out_that_is_a_file_or_under_one(
    tmp_path: Path, a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _yaml(tmp_path / "c.yaml", TINY)
    before = _files(tmp_path)
    line = _fails(capsys, ["run", config, "--out", str(a_file), "--quiet"])
    assert f"--out {str(a_file)!r} is a file, not a folder" in line
    line = _fails(capsys, ["run", config, "--out", str(a_file / "sub" / "run"), "--quiet"])
    assert f"lies under {str(a_file)!r}, which is a file" in line
    assert _files(tmp_path) == before


def test_encode_out_that_is_a_folder_under_a_file_or_of_another_format(
    tmp_path: Path, a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["encode", "--dataset", "digits", "--encoder", "glove-50d", "--quiet"]
    argv += ["--cache", str(tmp_path / "cache")]
    (tmp_path / "folder.npy").mkdir()
    before = _files(tmp_path)
    cases = [
        (tmp_path / "folder.npy", "is a folder, not a file"),
        (a_file / "x.npy", "which is a file"),
        (tmp_path / "x.csv", "--out must end with one of ['.npy', '.safetensors']"),
    ]
    for out, problem in cases:
        line = _fails(capsys, [*argv, "--out", str(out)])
        assert "--out" in line and str(out) in line and problem in line
    line = _fails(capsys, [*argv[:-2], "--cache", str(a_file)])
    assert f"--cache {str(a_file)!r} is a file, not a folder" in line
    assert _files(tmp_path) == before  # checked before encoding: no cache entry either


def test_compare_plot_paths(
    tmp_path: Path,
    a_file: Path,
    embeddings: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = _files(tmp_path)
    for plot, problem in (
        (a_file / "chart.png", "which is a file"),
        (tmp_path, "must end with an image format suffix"),
        (tmp_path / "chart.xyz", "must end with an image format suffix"),
    ):
        line = _fails(capsys, ["compare", *embeddings, "--plot", str(plot)])
        assert "--plot" in line and problem in line
    assert capsys.readouterr().out == ""  # refused before computing anything
    assert _files(tmp_path) == before


def test_report_on_a_folder_that_is_not_a_run(
    tmp_path: Path, a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "is not a folder" in _fails(capsys, ["report", str(a_file)])
    assert "holds no results.csv" in _fails(capsys, ["report", str(tmp_path)])
    assert "is not a folder" in _fails(capsys, ["report", str(tmp_path / "missing")])
    assert _files(tmp_path) == ["a-file"]


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="permissions do not bind root"
)
def test_unwritable_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = _fails(capsys, ["run", _yaml(tmp_path / "c.yaml", TINY), "--out", str(locked)])
        assert "no permission to write" in line and str(locked) in line
        argv = ["encode", "--dataset", "digits", "--encoder", "glove-50d", "--quiet"]
        line = _fails(capsys, [*argv, "--out", str(locked / "deep" / "x.npy")])
        assert "--out" in line and "no permission to write" in line
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_an_unwritable_folder_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The permission check, on machines where the tests run as root (who may write anywhere)."""
    out = tmp_path / "run"
    config = _yaml(tmp_path / "c.yaml", TINY)

    def denied(path: object, mode: int, **kwargs: object) -> bool:
        return Path(str(path)) != tmp_path

    monkeypatch.setattr(os, "access", denied)
    line = _fails(capsys, ["run", config, "--out", str(out)])
    assert f"no permission to write in {str(tmp_path)!r}" in line
    assert not out.exists()


def test_an_os_error_deep_in_a_command_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "run" / "cells"))

    monkeypatch.setattr(runner, "run", fails)
    argv = ["run", _yaml(tmp_path / "c.yaml", TINY), "--out", str(tmp_path / "run")]
    line = _fails(capsys, argv)
    assert line.endswith(f"error: Permission denied: {str(tmp_path / 'run' / 'cells')!r}")


# -- embedding and label files ----------------------------------------------------------------


def test_compare_refuses_invalid_embedding_files(
    tmp_path: Path, embeddings: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.numpy import save_file

    a, _ = embeddings
    save_file({"e": np.ones((40, 3), np.float32)}, str(tmp_path / "b.safetensors"))
    data = (tmp_path / "b.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.npy").write_text("0.1 0.2\n0.3 0.4\n")
    np.save(tmp_path / "objects.npy", np.array([[None]], dtype=object), allow_pickle=True)
    holes = np.load(a)
    holes[3, 1] = np.nan
    np.save(tmp_path / "holes.npy", holes)
    for name, problem in (
        ("cut.safetensors", "is not a valid safetensors file"),
        ("text.npy", "is not a valid .npy array file"),
        ("objects.npy", "holds Python objects"),
        ("holes.npy", "holds 1 NaN or infinite value(s), the first at row 3, column 1"),
    ):
        line = _fails(capsys, ["compare", a, str(tmp_path / name)])
        assert str(tmp_path / name) in line and problem in line
        assert "allow_pickle" not in line and "pickle.load" not in line


def test_compare_labels_files(
    tmp_path: Path, embeddings: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", *embeddings, "--strategy", "stratified", "--anchors", "8", "--labels"]
    np.save(tmp_path / "short.npy", np.arange(30) % 4)
    line = _fails(capsys, [*argv, str(tmp_path / "short.npy")])
    assert "--labels" in line and "holds 30 labels" in line and "N=40" in line
    (tmp_path / "text.npy").write_text("0\n1\n")
    line = _fails(capsys, [*argv, str(tmp_path / "text.npy")])
    assert "is not a valid .npy array file" in line and "allow_pickle" not in line
    np.save(tmp_path / "labels.npy", np.arange(40) % 4)  # the control: the right file works
    assert main([*argv, str(tmp_path / "labels.npy")]) == 0
    assert "8 stratified anchors" in capsys.readouterr().out


# -- the run folder after a failed run --------------------------------------------------------


def test_a_failed_run_does_not_block_the_corrected_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    first = _yaml(tmp_path / "first.yaml", TINY)
    real = spaces._synthetic_spaces

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("the data could not be loaded")

    # a failure after the folder is claimed, before any cell finishes
    monkeypatch.setattr(spaces, "_synthetic_spaces", broken)
    assert "could not be loaded" in _fails(capsys, ["run", first, "--out", str(out), "--quiet"])
    assert (out / "config.json").is_file() and not list(out.glob("cells/*.csv"))
    monkeypatch.setattr(spaces, "_synthetic_spaces", real)

    corrected = _yaml(tmp_path / "second.yaml", {**TINY, "seeds": [1]})
    assert main(["run", corrected, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert json.loads((out / "config.json").read_text())["seeds"] == [1]
    stored = (out / "config.json").read_bytes()
    # now it holds finished cells: the first config is refused, and the folder left alone
    line = _fails(capsys, ["run", first, "--out", str(out), "--quiet"])
    assert "holds the results of a different config" in line
    assert (out / "config.json").read_bytes() == stored


# -- non-finite numbers and unsafe names ------------------------------------------------------


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_non_finite_learning_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TINY).replace("hidden: 8", f"hidden: 8\n  lr: {value}"))
    line = _fails(capsys, ["run", str(path), "--out", str(tmp_path / "run")])
    assert "'head.lr': must be a finite number" in line
    assert not (tmp_path / "run").exists()


def test_a_config_name_cannot_escape_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config = _yaml(tmp_path / "c.yaml", {**TINY, "name": "../../x"})
    assert "config key 'name'" in _fails(capsys, ["run", config, "--quiet"])
    odd = _yaml(tmp_path / "..odd.yaml", {k: v for k, v in TINY.items() if k != "name"})
    assert "add a 'name' key" in _fails(capsys, ["run", odd, "--quiet"])
    assert _files(tmp_path) == ["..odd.yaml", "c.yaml", "cwd"]


# -- every other user error -------------------------------------------------------------------


def _broken_yaml(tmp_path: Path) -> list[str]:
    files = {
        "list.yaml": b"- a\n- b\n",
        "syntax.yaml": b"name: [unclosed\n",
        "latin1.yaml": "name: caf\xe9\n".encode("latin-1"),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "folder.yaml").mkdir()
    return [str(tmp_path / name) for name in [*files, "folder.yaml"]]


def test_other_user_errors(
    tmp_path: Path, embeddings: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    encode = ["encode", "--dataset", "digits", "--encoder", "glove-50d", "--quiet"]
    encode += ["--cache", str(tmp_path / "cache")]
    config = _yaml(tmp_path / "c.yaml", TINY)
    run = ["run", config, "--out", str(tmp_path / "run"), "--quiet"]
    cases: list[tuple[list[str], str]] = [
        ([*encode, "--batch-size", "-3"], "argument --batch-size: must be a positive integer"),
        ([*encode, "--batch-size", "x"], "argument --batch-size: must be a positive integer"),
        ([*encode, "--option", "seed=NaN"], "--option seed: NaN is not a finite number"),
        ([*encode, "--option", "seed=1e999"], "--option seed: 1e999 is not a finite number"),
        ([*encode, "--option", "seed=1", "--option", "seed=2"], "--option seed is given twice"),
        ([*encode, "--option", "nokey"], "--option takes KEY=VALUE"),
        ([*encode[:2], "nosuch", *encode[3:]], "got 'nosuch'"),
        ([*encode, "--split", "validation"], "got 'validation'"),
        ([*run[:-1], "--seeds"], "argument --seeds: expected at least one argument"),
        ([*run, "--seeds", "-1"], "argument --seeds: must be an integer in [0, 4294967295]"),
        ([*run, "--seeds", "0", "0"], "'seeds': seeds must not repeat"),
        (["run", str(tmp_path / "missing.yaml")], "neither a built-in config"),
        (["compare", *embeddings, "--anchors", "0"], "argument --anchors: must be a positive"),
        (["compare", embeddings[0], str(tmp_path / "missing.npy")], "no embedding file at"),
        (["quickstart", "--samples", "0"], "argument --samples: must be a positive integer"),
        (["quickstart", "--seed", "-2"], "argument --seed: must be an integer in"),
        (["invariances", "--normalization", "centre"], "invalid choice: 'centre'"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    ]
    problems = ["must be a mapping, got list", "not valid YAML", "not UTF-8 text", "neither"]
    cases += [(["run", path], p) for path, p in zip(_broken_yaml(tmp_path), problems, strict=True)]
    before = _files(tmp_path)
    for argv, problem in cases:
        assert problem in _fails(capsys, argv), argv
    assert _files(tmp_path) == before


def test_debug_mode_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LATENTBRIDGE_DEBUG=1 lets an error propagate (for bug reports), with its type."""
    from latentbridge.encoders import UnknownEncoderError

    monkeypatch.setenv("LATENTBRIDGE_DEBUG", "1")
    argv = ["encode", "--dataset", "digits", "--encoder", "nosuch", "--quiet"]
    with pytest.raises(UnknownEncoderError, match="nosuch"):
        main([*argv, "--cache", str(tmp_path / "cache")])


def test_an_interruption_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    assert main(["run", _yaml(tmp_path / "c.yaml", TINY), "--out", str(tmp_path / "r")]) == 130
    assert capsys.readouterr().err == "latentbridge run: interrupted\n"


# -- through a real process -------------------------------------------------------------------


def test_no_traceback_from_the_console_script(tmp_path: Path) -> None:
    cut = tmp_path / "cut.safetensors"
    from safetensors.numpy import save_file

    save_file({"e": np.ones((8, 3), np.float32)}, str(cut))
    cut.write_bytes(cut.read_bytes()[:20])
    done = subprocess.run(
        [sys.executable, "-m", "latentbridge", "compare", str(cut), str(cut)],
        capture_output=True,
        text=True,
        env={**os.environ, "LATENTBRIDGE_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"latentbridge compare: error: {str(cut)!r} is not a valid ")
    assert _files(tmp_path) == ["cut.safetensors"]
