"""The device option: names, resolution, the config key and `latentbridge run --device`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from latentbridge._devices import check_device, resolve_device
from latentbridge.cli import main
from latentbridge.experiments import runner
from latentbridge.experiments.config import ConfigError, parse_config

from .test_cli_errors import _fails
from .test_config import TINY


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:12", "auto"])
def test_device_names(name: str) -> None:
    assert check_device(name) == name


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "", None, 0, "cpu:0"])
def test_bad_device_names_name_the_argument(name: object) -> None:
    with pytest.raises(ValueError, match=r"--device must be one of \['cpu', 'cuda', 'auto'\]"):
        check_device(name, "--device")


def test_resolution_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"device '{name}' needs a CUDA GPU"):
            resolve_device(name)


def test_resolution_with_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """With GPUs present (simulated: resolution only names the device), auto picks CUDA."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="there are 2 CUDA device"):
        resolve_device("cuda:2")


def test_the_config_key_is_checked_and_stored_only_when_set() -> None:
    assert parse_config(TINY).device == "cpu"
    assert "device" not in parse_config(TINY).to_dict()
    assert parse_config({**TINY, "device": "auto"}).to_dict()["device"] == "auto"
    with pytest.raises(ConfigError, match="config key 'device'"):
        parse_config({**TINY, "device": "tpu"})


@pytest.mark.parametrize("task", ["reconstruction", "graph"])
def test_the_training_tasks_take_a_device_with_the_cpu_bytes(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from latentbridge.experiments.config import load_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    config = load_config(Path(__file__).parent / "data" / "regression" / f"{task}.yaml")
    cpu = runner.run(config, tmp_path / "cpu", progress=False, report=False)
    auto = runner.run(replace(config, device="auto"), tmp_path / "auto", progress=False,
                      report=False)  # fmt: skip
    assert auto.read_bytes() == cpu.read_bytes()


def test_auto_on_a_cpu_machine_gives_the_cpu_bytes_and_resumes_the_same_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = parse_config(TINY)
    cpu = runner.run(config, tmp_path / "cpu", progress=False, report=False)
    auto = runner.run(replace(config, device="auto"), tmp_path / "auto", progress=False,
                      report=False)  # fmt: skip
    assert auto.read_bytes() == cpu.read_bytes()
    # The device is not part of the folder's identity: the cpu folder resumes with auto.
    assert "device" not in json.loads((tmp_path / "auto" / "config.json").read_text())
    runner.run(replace(config, device="auto"), tmp_path / "cpu", progress=False, report=False)


def test_the_command_refuses_cuda_without_a_gpu_and_other_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    line = _fails(capsys, ["run", "quick", "--device", "cuda", "--out", str(out)])
    assert "'cuda' needs a CUDA GPU" in line and not out.exists()
    line = _fails(capsys, ["run", "quick", "--device", "gpu", "--out", str(out)])
    assert "must be one of" in line and not out.exists()
    line = _fails(capsys, ["run", "similarity", "--device", "auto", "--out", str(out)])
    assert "trains nothing" in line and not out.exists()
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--device" in capsys.readouterr().out


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("task", ["classification", "reconstruction", "graph"])
def test_training_on_cuda_is_close_to_the_cpu(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv

    from latentbridge.experiments.config import load_config

    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    config = load_config(Path(__file__).parent / "data" / "regression" / f"{task}.yaml")
    cpu = runner.run(config, tmp_path / "cpu", progress=False, report=False)
    gpu = runner.run(replace(config, device="cuda"), tmp_path / "gpu", progress=False,
                     report=False)  # fmt: skip

    def values(path: Path) -> list[float]:
        with path.open() as handle:
            return [float(r["value"]) for r in csv.DictReader(handle) if r["value"]]

    # the regression tolerances (test_regression.py): rounding, not a different protocol
    diffs = [abs(a - b) for a, b in zip(values(cpu), values(gpu), strict=True)]
    assert sum(diffs) / len(diffs) <= 0.01
