"""The device option: names, resolution, the config key and `latentbridge run --device`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
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


# --------------------------------------------------------------------------------------------
# Encoders on a device: `Encoder.to`, `encode(device=...)`, `latentbridge encode --device`,
# trained vision encoders
# --------------------------------------------------------------------------------------------


def _fake_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolution sees one GPU; nothing may run on it (the tests only name the device)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def _tiny_module_encoder() -> object:
    from latentbridge.encoders import ModuleEncoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
    return ModuleEncoder("tiny", module, "vision", 5)


def test_encoders_declare_where_they_run_and_refuse_other_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from latentbridge import encoders

    onnx = encoders.get("minilm-l3")  # onnxruntime's CPU provider
    torch_encoder = encoders.get("minilm-l6")  # sentence-transformers
    assert onnx.device_types == ("cpu",) and torch_encoder.device_types == ("cpu", "cuda")
    assert onnx.device == torch_encoder.device == torch.device("cpu")
    _fake_gpus(monkeypatch)
    with pytest.raises(ValueError, match=r"device 'cuda': encoder 'minilm-l3' runs on cpu only"):
        onnx.to("cuda")
    assert onnx.to("auto").device == torch.device("cpu")  # auto: where the encoder can run
    assert torch_encoder.to("auto").device == torch.device("cuda")
    assert torch_encoder.to("cpu").device == torch.device("cpu")
    assert torch_encoder.to(torch.device("cuda", 0)).device == torch.device("cuda:0")
    with pytest.raises(ValueError, match="must be one of"):
        torch_encoder.to("gpu")


def test_auto_without_a_gpu_runs_every_encoder_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from latentbridge import encoders

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("minilm-l3", "minilm-l6", "glove-50d"):
        assert encoders.get(name).to("auto").device == torch.device("cpu")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        encoders.get("minilm-l6").to("cuda")


def test_a_module_encoder_starts_where_its_module_is_and_never_moves_it() -> None:
    from latentbridge.encoders import ModuleEncoder

    enc = _tiny_module_encoder()
    assert enc.device == torch.device("cpu")
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8), dtype=np.uint8)
    before = enc.encode(images)
    assert enc.model is enc.module  # on its own device: the module itself
    # Elsewhere (the meta device stands for a GPU here): a copy there, the module stays put.
    elsewhere = enc._on(torch.device("meta"))
    assert elsewhere is not enc.module and next(elsewhere.parameters()).is_meta
    assert next(enc.module.parameters()).device == torch.device("cpu")
    meta = torch.nn.Linear(2, 2, device="meta")  # a device type the encoder does not run on
    assert ModuleEncoder("m", meta, "vision", 2).device == torch.device("cpu")
    np.testing.assert_array_equal(enc.to("cpu").encode(images), before)


def test_encoder_objects_without_to_run_on_the_cpu(tmp_path: Path) -> None:
    from latentbridge.cache import EmbeddingCache
    from latentbridge.encoding import encode

    class Plain:  # the duck-typed encoder encode() accepts: no .to, no .device
        name, modality, dim = "plain", "vision", 2

        def fingerprint(self) -> str:
            return "plain-v1"

        def encode(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
            return inputs.reshape(len(inputs), -1)[:, :2].astype(np.float32)

    cache = EmbeddingCache(tmp_path)
    plain = encode("digits", Plain(), "test", cache=cache, progress=False)
    on_cpu = encode("digits", Plain(), "test", cache=cache, progress=False, device="cpu")
    np.testing.assert_array_equal(plain, on_cpu)
    with pytest.raises(ValueError, match=r"device 'cuda:0': encoder 'plain' has no \.to"):
        encode("digits", Plain(), "test", cache=cache, progress=False, device="cuda:0")
    with pytest.raises(ValueError, match="device must be one of"):
        encode("digits", Plain(), "test", cache=cache, progress=False, device="gpu")


def test_the_cache_keys_on_the_device_and_cpu_keys_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``device=None`` and ``device="cpu"`` hit one entry; latents an encoder computes off the
    CPU (simulated: the encoder reports a CUDA device but computes here) get another."""
    from latentbridge.cache import EmbeddingCache
    from latentbridge.encoders import ModuleEncoder
    from latentbridge.encoding import encode

    calls: list[int] = []

    class Counted(ModuleEncoder):
        reported = torch.device("cpu")

        @property
        def device(self) -> torch.device:
            return self.reported

        def _encode_batch(self, batch: object) -> np.ndarray:
            calls.append(1)
            with torch.inference_mode():
                return self.module(self.preprocess(batch)).numpy()

    enc = _tiny_module_encoder()
    counted = Counted("tiny", enc.module, "vision", 5)
    cache = EmbeddingCache(tmp_path)
    keys: list[dict[str, object]] = []
    compute = cache.compute

    def recorded(fields: dict[str, object], *args: object, **kwargs: object) -> np.ndarray:
        keys.append(fields)
        return compute(fields, *args, **kwargs)

    monkeypatch.setattr(cache, "compute", recorded)
    first = encode("digits", counted, "test", cache=cache, progress=False)
    assert "device" not in keys[0]  # the fields of a CPU encoding are those they always were
    n = len(calls)
    again = encode("digits", counted, "test", cache=cache, progress=False, device="cpu")
    assert len(calls) == n and np.array_equal(first, again)  # same key: a cache hit
    counted.reported = torch.device("cuda", 0)
    encode("digits", counted, "test", cache=cache, progress=False)
    assert len(calls) > n and keys[-1]["device"] == "cuda"  # another key: computed again


def test_encode_device_falls_back_to_the_cpu_for_cpu_only_encoders() -> None:
    from latentbridge.experiments.spaces import encode_device

    assert encode_device("minilm-l3", "cuda") == "cpu"  # ONNX
    assert encode_device("minilm-l6", "cuda:1") == "cuda:1"
    assert encode_device(_tiny_module_encoder(), "cuda") == "cuda"
    assert encode_device("minilm-l3", "auto") == "auto"  # resolved per encoder by .to
    assert encode_device("minilm-l6", "cpu") == "cpu"


def test_the_encode_command_takes_a_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = ["encode", "--dataset", "digits", "--split", "test", "--cache", str(tmp_path)]
    line = _fails(capsys, [*base, "--encoder", "tiny-missing", "--device", "gpu"])
    assert "--device" in line and "must be one of" in line
    line = _fails(capsys, [*base, "--encoder", "open-nsfw-resnet50", "--device", "cuda"])
    assert "needs a CUDA GPU" in line
    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    assert "--device" in capsys.readouterr().out


def test_trained_vision_encoders_key_on_the_device_type(monkeypatch: pytest.MonkeyPatch) -> None:
    from latentbridge.experiments.vision_models import TrainingOptions, fit_encoder, train_encoder

    cpu = TrainingOptions(dataset="digits", epochs=0)
    assert "device" not in cpu.stored()  # the keys of CPU entries are those they always had
    cuda = TrainingOptions(dataset="digits", epochs=0, device="cuda")
    assert cuda.stored()["device"] == "cuda" and cuda.key != cpu.key
    with pytest.raises(ValueError, match="device"):
        TrainingOptions(dataset="digits", device="cuda:0")  # a type, not a GPU
    with pytest.raises(ValueError, match=r"is not options\.device"):
        fit_encoder(cuda, device="cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for options, device in ((cuda, None), (cpu, "cuda")):
        with pytest.raises(ValueError, match="device 'cuda' needs a CUDA GPU"):
            fit_encoder(options, device=device)
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        train_encoder("digits", epochs=0, device="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_encoders_on_cuda_are_close_to_the_cpu(tmp_path: Path) -> None:
    from latentbridge.cache import EmbeddingCache
    from latentbridge.encoding import encode
    from latentbridge.experiments.vision_models import train_encoder

    cache = EmbeddingCache(tmp_path)
    for name in ("minilm-l6",):
        cpu = encode("drug-reviews", name, "test", cache=cache, progress=False)
        gpu = encode("drug-reviews", name, "test", cache=cache, progress=False, device="cuda")
        np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    trained = train_encoder("digits", epochs=1, cache=tmp_path, device="cuda")
    assert not next(trained.module.parameters()).is_cuda  # back on the CPU, as a cached one
    assert "device" in trained.manifest["options"]
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    on_cpu = trained.encode(images)
    enc = trained.encoder().to("cuda")
    assert enc.device.type == "cuda" and not next(trained.module.parameters()).is_cuda
    np.testing.assert_allclose(enc.encode(images), on_cpu, atol=1e-4)
