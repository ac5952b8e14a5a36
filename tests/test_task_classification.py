"""`latentbridge run`: the protocol on known transformations, outputs, resumption.

Config validation is tested in test_config.py.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from latentbridge.cli import main
from latentbridge.experiments import runner
from latentbridge.experiments.config import ConfigError, parse_config
from latentbridge.experiments.tasks import classification

from .test_config import TINY


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _results(path: Path) -> dict[tuple[str, str, str, str], str]:
    with path.open() as handle:
        return {
            (r["source"], r["target"], r["variant"], r["metric"]): r["value"]
            for r in csv.DictReader(handle)
        }


def test_a_folder_from_before_the_task_key_still_resumes(tmp_path: Path) -> None:
    """config.json files written before a field existed match when the field is at its default."""
    import json

    config = parse_config(TINY)
    out = tmp_path / "run"
    runner.run(config, out, progress=False, report=False)
    stored = json.loads((out / "config.json").read_text())
    for key in ("task", "reconstruction", "graph", "similarity"):
        stored.pop(key)
    (out / "config.json").write_text(json.dumps(stored))
    before = (out / "results.csv").read_text()
    runner.run(config, out, progress=False, report=False)
    assert (out / "results.csv").read_text() == before
    with pytest.raises(ValueError, match="different config"):
        runner.run(parse_config({**TINY, "seeds": [1]}), out, progress=False, report=False)


def test_bad_config_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", str(_write(tmp_path, {**TINY, "seeds": "zero"})), "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "'seeds'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "no-such-config", "--out", str(tmp_path)])
    assert "neither a built-in config" in capsys.readouterr().err


def test_tiny_run_end_to_end_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["run", str(_write(tmp_path, TINY)), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| Dataset |" in printed or "| dataset |" in printed
    for name in ("results.csv", "summary.md", "report.html", "config.json"):
        assert (out / name).is_file(), name
    heatmaps = sorted(p.name for p in (out / "heatmaps").iterdir())
    assert len(heatmaps) == 5  # absolute, three projections, the product
    res = _results(out / "results.csv")
    # 3 encoders x 3 encoders x 5 variants x 1 seed x 2 metrics, and the anchor consistency of
    # the 3 x 2 stitched pairs
    assert len(res) == 3 * 3 * 5 * 2 + 3 * 2 * 5
    acc = {k[:3]: float(v) for k, v in res.items() if k[3] == "accuracy"}
    consistency = {k[:3]: float(v) for k, v in res.items() if k[3] == "anchor_consistency"}
    assert {(a, b) for a, b, _ in consistency} == {(a, b) for a, b, _ in acc if a != b}
    assert all(0.0 <= v <= 1.0 for v in consistency.values())
    # Under an invariance the stitched head sees the same anchors: full agreement.
    assert consistency[("identity", "orthogonal", "euclidean")] == 1.0
    assert consistency[("identity", "orthogonal", "absolute")] < 1.0
    # Euclidean is invariant to rotations and translations: stitching changes nothing.
    for b in ("orthogonal", "translation"):
        assert acc[("identity", b, "euclidean")] == pytest.approx(
            acc[("identity", "identity", "euclidean")]
        )
    # Absolute latents do not stitch across a rotation (chance is 0.25).
    assert acc[("identity", "identity", "absolute")] > 0.6
    assert acc[("identity", "orthogonal", "absolute")] < 0.4
    # L1 is invariant to translations, not to rotations.
    assert acc[("identity", "translation", "l1")] == pytest.approx(
        acc[("identity", "identity", "l1")]
    )
    # Cosine is not invariant to translations (the data is far from the origin).
    assert acc[("identity", "translation", "cosine")] < acc[("identity", "identity", "cosine")]
    # `latentbridge report` rebuilds the same summary from results.csv.
    before = (out / "summary.md").read_bytes()
    (out / "summary.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "summary.md").read_bytes() == before


def test_resume_recomputes_nothing_that_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config({**TINY, "variants": {**TINY["variants"], "aggregations": []}})
    calls: list[tuple[str, int, str]] = []
    real = classification._cell_rows

    def counting(features, variant, seed, encoder, cfg, *rest):  # type: ignore[no-untyped-def]
        calls.append((variant, seed, encoder))
        if len(calls) == 5 and interrupt:
            raise KeyboardInterrupt
        return real(features, variant, seed, encoder, cfg, *rest)

    monkeypatch.setattr(classification, "_cell_rows", counting)
    interrupt = True
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        runner.run(config, out, progress=False, report=False)
    finished = _results(out / "results.csv")
    # four finished cells, each 3 test encoders x 2 metrics and 2 stitched anchor consistencies
    assert len(finished) == 4 * (3 * 2 + 2)
    done = list(calls[:4])
    calls.clear()
    interrupt = False
    runner.run(config, out, progress=False, report=False)
    assert not set(calls) & set(done)
    assert len(calls) == 4 * 3 - 4  # 4 variants x 3 train encoders, minus the finished ones
    complete = _results(out / "results.csv")
    assert all(complete[k] == v for k, v in finished.items())  # nothing finished was lost
    # A different config in the same folder is refused rather than mixed in.
    with pytest.raises(ValueError, match="different config"):
        runner.run(parse_config(TINY), out, progress=False, report=False)


def test_an_interrupted_run_resumes_to_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heads are trained in groups fixed by the config, so the cells a resumed run recomputes
    are the same values as in a run that was never interrupted."""
    config = parse_config({**TINY, "seeds": [0, 1]})
    whole = runner.run(config, tmp_path / "whole", progress=False, report=False)
    real = classification._cell_rows
    calls: list[object] = []

    def interrupted(*args):  # type: ignore[no-untyped-def]
        calls.append(args)
        if len(calls) == 7:  # within a group: its heads were trained with the earlier cells'
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(classification, "_cell_rows", interrupted)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        runner.run(config, out, progress=False, report=False)
    monkeypatch.setattr(classification, "_cell_rows", real)
    resumed = runner.run(config, out, progress=False, report=False)
    assert resumed.read_bytes() == whole.read_bytes()


def test_runs_are_deterministic(tmp_path: Path) -> None:
    config = parse_config(
        {**TINY, "variants": {"projections": ["l1"], "aggregations": ["mlp_sum"]}}
    )
    a = runner.run(config, tmp_path / "a", progress=False, report=False)
    b = runner.run(config, tmp_path / "b", progress=False, report=False)
    assert a.read_bytes() == b.read_bytes()


def test_text_run_reports_absolute_across_dimensions_as_not_applicable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    config = parse_config(
        {
            "name": "tiny-text",
            "datasets": [{"name": "drug-reviews", "encoders": ["glove-50d", "use-m3"]}],
            "anchors": {"num": 64},
            "variants": {
                "projections": ["cosine"],
                "aggregations": [],
                "translation": ["affine", "orthogonal"],
            },
            "head": {"hidden": 16, "epochs": 2},
            "seeds": [0],
        }
    )
    res = _results(runner.run(config, tmp_path / "run", progress=False, report=False))
    assert res[("glove-50d", "use-m3", "absolute", "accuracy")] == ""
    assert res[("glove-50d", "glove-50d", "absolute", "accuracy")] != ""
    # Test latents are translated into the train encoder's space by a map fitted on the anchors,
    # after zero padding to 512 dims: 64 anchors cannot determine an affine map (not applicable),
    # while an orthogonal one is always defined.
    for a, b in (("glove-50d", "use-m3"), ("use-m3", "glove-50d")):
        assert res[(a, b, "translation:affine", "accuracy")] == ""
        assert float(res[(a, b, "translation:orthogonal", "accuracy")]) > 0
    assert float(res[("glove-50d", "use-m3", "cosine", "macro_f1")]) > 0


def test_trained_vision_encoders_run_through_the_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `vision` config's path: encoders trained from scratch, cached, registered, stitched."""
    import torch

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    config = parse_config(
        {
            "name": "tiny-vision",
            "datasets": [
                {
                    "name": "digits",
                    "trained_encoders": {"architectures": ["mlp"], "seeds": [0, 1], "epochs": 3},
                }
            ],
            "anchors": {"num": 64},
            "variants": {"projections": ["cosine"], "aggregations": []},
            "head": {"hidden": 32, "epochs": 5},
            "seeds": [0],
        }
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread avoids spin-waiting on a busy machine
    try:
        res = _results(runner.run(config, tmp_path / "run", progress=False, report=False))
    finally:
        torch.set_num_threads(threads)
    encoders = {k[0] for k in res}
    assert encoders == {"digits/mlp-s0", "digits/mlp-s1"}
    assert (tmp_path / "cache" / "models" / "vision").is_dir()
    own = float(res[("digits/mlp-s0", "digits/mlp-s0", "cosine", "accuracy")])
    stitched = float(res[("digits/mlp-s0", "digits/mlp-s1", "cosine", "accuracy")])
    assert own > 0.5 and stitched > 0.2  # chance is 0.1


def test_run_checks_a_config_built_in_python_before_writing(tmp_path: Path) -> None:
    from dataclasses import replace

    from latentbridge.experiments.config import HeadConfig

    config = parse_config(TINY)
    out = tmp_path / "run"
    for bad, key in (
        (replace(config, name="../escape"), "'name'"),
        (replace(config, head=HeadConfig(lr=float("nan"))), "'head.lr'"),
    ):
        with pytest.raises(ConfigError, match=re.escape(key)):
            runner.run(bad, out, progress=False, report=False)
    for seeds in ([], [0, 0], [-1], ["0"]):
        with pytest.raises(ConfigError, match="'seeds'"):
            runner.run(config, out, seeds=seeds, progress=False, report=False)
    assert not out.exists()


def test_run_refuses_an_encoder_that_is_not_installed(tmp_path: Path) -> None:
    import torch

    from latentbridge import encoders

    class Missing(encoders.ModuleEncoder):
        def is_available(self) -> bool:
            return False

    encoders.register(
        "test-missing",
        lambda: Missing("test-missing", torch.nn.Identity(), "text", 3),
        modality="text",
        dim=3,
        install_hint="pip install test-missing",
    )
    try:
        config = parse_config(
            {**TINY, "datasets": [{"name": "drug-reviews", "encoders": ["test-missing"]}]}
        )
        with pytest.raises(RuntimeError, match=r"'test-missing' is not installed.*pip install"):
            runner.run(config, tmp_path / "run", progress=False, report=False)
    finally:
        encoders.unregister("test-missing")
    assert not (tmp_path / "run").exists()


# -- the run folder: resume, replace an unfinished config, refuse another's results ---------


def _tiny(**changes: object) -> object:
    return parse_config(
        {**TINY, "variants": {"projections": ["l1"], "aggregations": []}, **changes}
    )


def test_a_folder_without_finished_work_takes_the_new_config(tmp_path: Path) -> None:
    import json

    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"name": "an-old-failed-run", "seeds": [7]}))
    config = _tiny()
    runner.run(config, out, progress=False, report=False)
    stored = json.loads((out / "config.json").read_text())
    assert stored["name"] == "tiny" and stored["seeds"] == [0]
    assert list((out / "cells").glob("*.csv"))
    (out / "config.json").write_text("{not json")  # unreadable, with finished cells: refused
    with pytest.raises(ValueError, match="different config"):
        runner.run(config, out, progress=False, report=False)


def test_finished_cells_or_models_of_another_config_are_refused(tmp_path: Path) -> None:
    import json

    out = tmp_path / "run"
    runner.run(_tiny(), out, progress=False, report=False)
    before = (out / "config.json").read_bytes()
    with pytest.raises(ValueError, match="different config"):
        runner.run(_tiny(seeds=[1]), out, progress=False, report=False)
    assert (out / "config.json").read_bytes() == before
    # trained weights are finished work too: reusing them under another config would be wrong
    models = tmp_path / "models-only"
    (models / "models" / "digits").mkdir(parents=True)
    (models / "models" / "digits" / "absolute__ae-0__abc.pt").write_bytes(b"weights")
    (models / "config.json").write_text(json.dumps({"name": "other"}))
    with pytest.raises(ValueError, match="different config"):
        runner.run(_tiny(), models, progress=False, report=False)
    assert json.loads((models / "config.json").read_text()) == {"name": "other"}
    # cells without any config.json cannot be attributed: refused, not adopted
    (out / "config.json").unlink()
    with pytest.raises(ValueError, match=r"no config\.json"):
        runner.run(_tiny(), out, progress=False, report=False)
    assert not (out / "config.json").exists()


# -- zero-shot selection ----------------------------------------------------------------------

SELECTION = {**TINY, "variants": {**TINY["variants"], "selection": True}}
CANDIDATES = ("euclidean", "l1", "cosine", "product:mlp_sum")


def _values(path: Path) -> dict[tuple[str, str, str, str], float | None]:
    return {k: (float(v) if v else None) for k, v in _results(path).items()}


def test_selected_is_the_candidate_with_the_highest_anchor_consistency(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner.run(parse_config(SELECTION), out, progress=False, report=False)
    res = _values(out / "results.csv")
    pairs = {(s, t) for s, t, _, _ in res}
    assert {v for _, _, v, _ in res} >= {"selected", "ensemble", *CANDIDATES}
    for source, target in pairs:
        for metric in ("accuracy", "macro_f1"):
            assert res[(source, target, "ensemble", metric)] is not None
        if source == target:  # every consistency is 1: the first candidate
            chosen = CANDIDATES[0]
            assert (source, target, "selected", "anchor_consistency") not in res
        else:
            scores = [res[(source, target, c, "anchor_consistency")] for c in CANDIDATES]
            chosen = CANDIDATES[scores.index(max(scores))]  # type: ignore[type-var]
            assert res[(source, target, "selected", "anchor_consistency")] == max(scores)  # type: ignore[type-var]
            ensemble = res[(source, target, "ensemble", "anchor_consistency")]
            assert ensemble is not None and 0.0 <= ensemble <= 1.0
        for metric in ("accuracy", "macro_f1"):
            assert (
                res[(source, target, "selected", metric)] == res[(source, target, chosen, metric)]
            )
    # Under a rotation, euclidean is invariant (consistency 1) and l1 is not: the rotated space
    # never selects a candidate less consistent than euclidean.
    assert res[("identity", "orthogonal", "selected", "anchor_consistency")] == 1.0


def test_selection_reuses_the_candidates_and_retrains_them_only_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(SELECTION)
    out = tmp_path / "run"
    trained: list[str] = []
    real = classification._train

    def counting(features, variant, jobs, cfg, wanted):  # type: ignore[no-untyped-def]
        heads = real(features, variant, jobs, cfg, wanted)
        trained.extend([variant.name] * len(heads))
        return heads

    monkeypatch.setattr(classification, "_train", counting)
    runner.run(config, out, progress=False, report=False)
    assert "selected" not in trained and "ensemble" not in trained
    assert len(trained) == len(set(trained)) * 3  # each variant once per train encoder
    before = (out / "results.csv").read_text()
    # Without the stored outputs (and their cells), the selection trains its candidates again
    # with the same seeds: the same rows.
    for path in (out / "models").rglob("*outputs*"):
        path.unlink()
    for path in (out / "cells").glob("*selected*"):
        path.unlink()
    trained.clear()
    runner.run(config, out, progress=False, report=False)
    assert sorted(set(trained)) == sorted(CANDIDATES)
    assert (out / "results.csv").read_text() == before


def test_a_config_without_selection_keeps_no_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner.run(parse_config(TINY), out, progress=False, report=False)
    assert not list(out.rglob("*outputs*"))


def test_a_folder_with_another_ensemble_temperature_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    config = parse_config(SELECTION)
    out = tmp_path / "run"
    runner.run(config, out, progress=False, report=False)
    stored = json.loads((out / "config.json").read_text())
    assert stored["variants"]["ensemble_temperature"] == runner.ENSEMBLE_TEMPERATURE
    monkeypatch.setattr(runner, "ENSEMBLE_TEMPERATURE", 0.5)
    with pytest.raises(ValueError, match="different config"):
        runner.run(config, out, progress=False, report=False)
    # Without selection the temperature is not part of the folder's config.
    assert "ensemble_temperature" not in runner.folder_config(parse_config(TINY))["variants"]


def test_heads_are_split_into_stacks_of_bounded_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parameter budget splits a group into consecutive stacks (one head each here): the
    same protocol, so the same results up to rounding."""
    config = parse_config({**TINY, "seeds": [0, 1]})
    whole = _results(runner.run(config, tmp_path / "whole", progress=False, report=False))
    sizes: list[int] = []
    real = classification.train_classifiers

    def recording(models, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(models))
        return real(models, *args, **kwargs)

    monkeypatch.setattr(classification, "train_classifiers", recording)
    monkeypatch.setattr(classification, "MAX_STACK_PARAMETERS", 1)
    split = _results(runner.run(config, tmp_path / "split", progress=False, report=False))
    assert sizes and set(sizes) == {1}
    assert split.keys() == whole.keys()
    diffs = [abs(float(split[k]) - float(v)) for k, v in whole.items() if v != ""]
    assert max(diffs) <= 0.03 and sum(diffs) / len(diffs) <= 0.005
