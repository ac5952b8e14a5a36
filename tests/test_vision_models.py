"""Vision encoders trained from scratch: accuracy, determinism, the model cache, registration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import latentbridge as lb
from latentbridge.cache import EmbeddingCache
from latentbridge.experiments import vision_models as vm
from latentbridge.experiments.training import seeded

# 8x8 digits (1,347 train / 450 test): a few seconds for all three architectures.
FAST: dict[str, Any] = {"dataset": "digits", "epochs": 8, "batch_size": 64, "lr": 3e-3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing in this file may write to the user's cache, even by default.
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="module")
def zoo(zoo_root: Path) -> dict[str, vm.TrainedEncoder]:
    return {
        arch: vm.train_encoder(architecture=arch, seed=0, cache=zoo_root, **FAST)
        for arch in vm.ARCHITECTURES
    }


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Recorder:
    def __init__(self) -> None:
        self.events: list[vm.TrainingEvent] = []

    def __call__(self, event: vm.TrainingEvent) -> None:
        self.events.append(event)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@pytest.mark.parametrize("architecture", vm.ARCHITECTURES)
def test_each_architecture_learns(zoo: dict[str, vm.TrainedEncoder], architecture: str) -> None:
    trained = zoo[architecture]
    # chance is 0.1 on 10 balanced classes
    assert trained.manifest["test_accuracy"] > 0.5, trained.manifest
    assert trained.manifest["train_accuracy"] > 0.5
    assert trained.name == f"digits/{architecture}-s0"
    assert trained.latent_dim == 64
    assert not trained.module.training
    test = lb.data.load("digits", "test")
    latents = trained.encode(test.inputs[:10])
    assert latents.shape == (10, 64) and latents.dtype == np.float32
    for field in ("architecture", "latent_dim", "dataset", "seed", "epochs", "mean", "std"):
        assert field in trained.manifest
    assert trained.manifest["latentbridge_version"] == lb.__version__
    files = sorted(p.name for p in trained.path.iterdir())
    assert files == ["encoder.safetensors", "manifest.json"]


def test_same_seed_same_weights_different_seed_different(tmp_path: Path) -> None:
    a = vm.train_encoder(architecture="cnn", seed=3, cache=tmp_path / "a", **FAST)
    b = vm.train_encoder(architecture="cnn", seed=3, cache=tmp_path / "b", **FAST)
    c = vm.train_encoder(architecture="cnn", seed=4, cache=tmp_path / "a", **FAST)
    assert not a.cached and not b.cached and not c.cached
    assert _same_state(a.module, b.module)
    assert not _same_state(a.module, c.module)
    assert a.path != c.path


def test_global_rng_untouched(tmp_path: Path) -> None:
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    expected = torch.rand(5)
    torch.set_rng_state(before)
    vm.train_encoder(architecture="resnet", seed=0, cache=tmp_path, **{**FAST, "epochs": 1})
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(torch.rand(5), expected)


def test_second_call_is_served_from_cache(
    zoo: dict[str, vm.TrainedEncoder], zoo_root: Path
) -> None:
    first = zoo["cnn"]
    recorder = Recorder()
    again = vm.train_encoder(architecture="cnn", seed=0, cache=zoo_root, progress=recorder, **FAST)
    assert recorder.kinds == ["cached"]
    assert again.cached and again.path == first.path
    assert _same_state(first.module, again.module)
    assert again.manifest["test_accuracy"] == first.manifest["test_accuracy"]
    assert again.name == first.name and not again.module.training


def test_first_call_reports_epochs(tmp_path: Path) -> None:
    recorder = Recorder()
    vm.train_encoder(architecture="mlp", seed=0, cache=tmp_path, progress=recorder, **FAST)
    assert recorder.kinds == ["epoch"] * FAST["epochs"] + ["trained"]
    assert all(e.loss is not None and np.isfinite(e.loss) for e in recorder.events[:-1])
    epochs = recorder.events[:-1]
    assert [e.epoch for e in epochs] == list(range(1, FAST["epochs"] + 1))
    assert all(e.accuracy is not None and 0.0 <= e.accuracy <= 1.0 for e in epochs)
    assert all(e.name == "digits/mlp-s0" and e.epochs == FAST["epochs"] for e in recorder.events)
    # each epoch's mean is its own (the tally restarts), so the loss falls as the model learns
    assert epochs[-1].loss is not None and epochs[0].loss is not None
    assert epochs[-1].loss < epochs[0].loss


def test_refresh_retrains_a_stored_encoder(tmp_path: Path) -> None:
    options = {**FAST, "epochs": 1}
    first = vm.train_encoder(architecture="mlp", seed=0, cache=tmp_path, **options)
    recorder = Recorder()
    again = vm.train_encoder(
        architecture="mlp", seed=0, cache=tmp_path, progress=recorder, refresh=True, **options
    )
    assert not again.cached and recorder.kinds == ["epoch", "trained"]
    assert _same_state(first.module, again.module)


def test_progress_must_be_callable(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="progress"):
        vm.train_encoder(
            architecture="mlp",
            cache=tmp_path,
            progress="yes",  # type: ignore[arg-type]
            **FAST,
        )
    assert not (tmp_path / "models").exists()


def test_cache_is_read_without_unpickling(
    zoo: dict[str, vm.TrainedEncoder], zoo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", forbidden)
    again = vm.train_encoder(architecture="resnet", seed=0, cache=zoo_root, **FAST)
    assert again.cached and _same_state(again.module, zoo["resnet"].module)


def test_corrupted_weights_are_detected_and_retrained(tmp_path: Path) -> None:
    original = vm.train_encoder(architecture="mlp", seed=0, cache=tmp_path, **FAST)
    weights = original.path / "encoder.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-10] ^= 0xFF  # one flipped byte inside the tensor data still parses as safetensors
    weights.write_bytes(bytes(raw))
    recorder = Recorder()
    with pytest.warns(UserWarning, match="unusable"):
        again = vm.train_encoder(
            architecture="mlp", seed=0, cache=tmp_path, progress=recorder, **FAST
        )
    assert not again.cached and "epoch" in recorder.kinds
    assert _same_state(again.module, original.module)  # retrained deterministically
    third = vm.train_encoder(architecture="mlp", seed=0, cache=tmp_path, **FAST)
    assert third.cached


def test_truncated_manifest_is_detected(tmp_path: Path) -> None:
    original = vm.train_encoder(architecture="mlp", seed=1, cache=tmp_path, **FAST)
    (original.path / "manifest.json").write_text("{not json")
    with pytest.warns(UserWarning, match="manifest unreadable"):
        again = vm.train_encoder(architecture="mlp", seed=1, cache=tmp_path, **FAST)
    assert not again.cached


def test_options_change_the_key(tmp_path: Path) -> None:
    a = vm.train_encoder(architecture="mlp", seed=0, cache=tmp_path, **FAST)
    b = vm.train_encoder(architecture="mlp", seed=0, cache=tmp_path, **{**FAST, "epochs": 2})
    assert a.path != b.path and not b.cached
    assert b.manifest["epochs"] == 2


def test_default_cache_is_the_environment_cache(tmp_path: Path) -> None:
    trained = vm.train_encoder(architecture="mlp", seed=0, **{**FAST, "epochs": 1})
    assert trained.path.parent == tmp_path / "default-cache" / "models" / "vision"


def test_registered_encoder_works_through_encode(
    zoo: dict[str, vm.TrainedEncoder], tmp_path: Path
) -> None:
    trained = zoo["cnn"]
    encoder = trained.register()
    try:
        assert encoder.dim == 64 and encoder.modality == "vision"
        latents = lb.encode(
            "digits", trained.name, "test", cache=EmbeddingCache(tmp_path), progress=False
        )
        test = lb.data.load("digits", "test")
        assert latents.shape == (len(test), 64) and latents.dtype == np.float32
        np.testing.assert_allclose(latents, trained.encode(test.inputs), rtol=1e-5, atol=1e-5)
        # the second call comes from the embedding cache, keyed on the weights fingerprint
        again = lb.encode(
            "digits", trained.name, "test", cache=EmbeddingCache(tmp_path), progress=False
        )
        np.testing.assert_array_equal(latents, again)
        assert len(list((tmp_path / "embeddings").rglob("embeddings.npy"))) == 1
    finally:
        lb.encoders.unregister(trained.name)


def test_preprocess_normalises_and_checks_size(zoo: dict[str, vm.TrainedEncoder]) -> None:
    trained = zoo["mlp"]
    images = lb.data.load("digits", "test").inputs[:4]
    x = trained.preprocess(images)
    assert x.shape == (4, 1, 8, 8) and x.dtype == torch.float32
    expected = (images.astype(np.float32) / 255.0 - trained.mean) / trained.std
    np.testing.assert_allclose(x[:, 0].numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="8x8"):
        trained.preprocess(np.zeros((2, 28, 28), dtype=np.uint8))


def test_different_seeds_give_different_fingerprints(
    zoo: dict[str, vm.TrainedEncoder], zoo_root: Path
) -> None:
    other = vm.train_encoder(architecture="cnn", seed=1, cache=zoo_root, **FAST)
    names = [zoo["cnn"].name, other.name]
    assert names[0] != names[1]
    try:
        fingerprints = [zoo["cnn"].register().fingerprint(), other.register().fingerprint()]
        assert fingerprints[0] != fingerprints[1]
        assert lb.encoders.get(names[0]).fingerprint() == fingerprints[0]
    finally:
        for name in names:
            lb.encoders.unregister(name)


def test_zoo_with_per_architecture_latent_dims(tmp_path: Path) -> None:
    zoo = vm.train_zoo(
        "digits",
        architectures=("mlp", "cnn"),
        seeds=(0, 1),
        latent_dim={"mlp": 16, "cnn": 32},
        cache=tmp_path,
        epochs=1,
        batch_size=64,
    )
    assert [(t.name, t.latent_dim) for t in zoo] == [
        ("digits/mlp-d16-s0", 16),
        ("digits/mlp-d16-s1", 16),
        ("digits/cnn-d32-s0", 32),
        ("digits/cnn-d32-s1", 32),
    ]
    images = lb.data.load("digits", "test").inputs[:3]
    assert zoo[0].encode(images).shape == (3, 16)
    assert zoo[2].encode(images).shape == (3, 32)


BAD_OPTIONS = [
    ({"architecture": "vit"}, "architecture"),
    ({"dataset": "no-such-dataset"}, "dataset"),
    ({"dataset": "cora"}, "dataset"),
    ({"latent_dim": 0}, "latent_dim"),
    ({"latent_dim": -3}, "latent_dim"),
    ({"latent_dim": 2.5}, "latent_dim"),
    ({"epochs": -1}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"lr": True}, "lr"),
    ({"lr": float("inf")}, "lr"),
    ({"seed": -1}, "seed"),
    ({"train_subset": 0}, "train_subset"),
]


@pytest.mark.parametrize(("options", "named"), BAD_OPTIONS)
def test_bad_options_raise_value_error(tmp_path: Path, options: dict[str, Any], named: str) -> None:
    kwargs = {**FAST, "epochs": 1, "cache": tmp_path, **options}
    with pytest.raises(ValueError, match=named):
        vm.train_encoder(**kwargs)
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(("options", "named"), BAD_OPTIONS)
def test_bad_training_options_raise_value_error(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        vm.TrainingOptions(**{**FAST, **options})


def test_bad_zoo_options() -> None:
    with pytest.raises(ValueError, match="architecture"):
        vm.train_zoo("digits", architectures=("cnn", "transformer"))
    with pytest.raises(ValueError, match="latent_dim"):
        vm.train_zoo("digits", architectures=("cnn",), latent_dim={"vit": 8})


def test_train_subset_is_class_balanced(tmp_path: Path) -> None:
    trained = vm.train_encoder(
        architecture="mlp", seed=0, cache=tmp_path, train_subset=200, **{**FAST, "epochs": 1}
    )
    assert trained.manifest["num_train"] == 200
    with pytest.raises(ValueError, match="subset"):
        vm.train_encoder(architecture="mlp", cache=tmp_path, train_subset=10**6, **FAST)


# ----------------------------------------------------------------- train / store / load, options

# Keys recorded before the training loop moved to training.fit: stored entries stay valid.
RECORDED_KEYS = [
    (
        {"architecture": "mlp", "seed": 0, "epochs": 2, "batch_size": 64, "lr": 3e-3},
        "c72c8f2c3c0b51d5dcf9a05ae8f16389f48f14404668875188401f4e479a00bd",
    ),
    (
        {"architecture": "mlp", "seed": 5, "epochs": 2, "latent_dim": 16, "train_subset": 500},
        "c14b000dc396bcfda607f6841ed8421f0c20bd4cc4078d998d7506268f2d57ae",
    ),
]


@pytest.mark.parametrize(("options", "key"), RECORDED_KEYS)
def test_cache_key_is_stable(options: dict[str, Any], key: str) -> None:
    assert vm.TrainingOptions(dataset="digits", **options).key == key
    # negative control: any option that changes the weights changes the key
    assert vm.TrainingOptions(dataset="digits", **{**options, "seed": 7}).key != key
    other_lr = vm.TrainingOptions(dataset="digits", **{**options, "lr": 2e-3})
    assert other_lr.key != key


def test_training_options_are_normalised_and_stored_as_the_manifest_has_them(
    zoo: dict[str, vm.TrainedEncoder],
) -> None:
    options = vm.TrainingOptions(architecture="cnn", seed=np.int64(0), **{**FAST, "lr": 3e-3})
    assert type(options.seed) is int and type(options.lr) is float
    assert vm.TrainingOptions(dataset="digits", lr=1).lr == 1.0
    trained = zoo["cnn"]
    assert options.stored() == trained.manifest["options"]
    assert options.key == trained.manifest["key"] == trained.path.name
    assert options.name == trained.name
    mutable = {"seed": 1}
    held = vm.TrainingOptions(dataset="digits", dataset_options=mutable)
    mutable["seed"] = 2  # the options keep their own copy
    assert held.dataset_options == {"seed": 1}
    assert hash(held) == hash(vm.TrainingOptions(dataset="digits", dataset_options={"seed": 1}))


def test_fit_store_load_are_the_steps_of_train_encoder(
    zoo: dict[str, vm.TrainedEncoder], tmp_path: Path
) -> None:
    options = vm.TrainingOptions(architecture="cnn", seed=0, **FAST)
    module, manifest = vm.fit_encoder(options)
    assert not module.training and "sha256" not in manifest
    assert not (tmp_path / "default-cache").exists()  # training alone writes nothing
    assert _same_state(module, zoo["cnn"].module)
    expected = {k: v for k, v in zoo["cnn"].manifest.items() if k != "sha256"}
    assert manifest == expected

    folder = tmp_path / "entry"
    stored = vm.store_trained(folder, module, manifest)
    assert "sha256" not in manifest  # the caller's manifest is left as it was
    assert stored.manifest == zoo["cnn"].manifest and not stored.cached
    assert stored.module is module and stored.path == folder
    loaded = vm.load_trained(folder, options.stored())
    assert loaded.cached and _same_state(loaded.module, module)
    assert loaded.manifest == stored.manifest
    with pytest.raises(ValueError, match="options differ"):
        vm.load_trained(folder, vm.TrainingOptions(architecture="cnn", seed=1, **FAST).stored())


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_zero_epochs_give_the_seeded_initialisation(architecture: str) -> None:
    module, manifest = vm.fit_encoder(
        vm.TrainingOptions(architecture=architecture, seed=2, **{**FAST, "epochs": 0})
    )
    with seeded(2):
        expected = vm.build_encoder(architecture, 64, (8, 8))
    with seeded(3):
        other = vm.build_encoder(architecture, 64, (8, 8))
    assert _same_state(module, expected)
    assert not _same_state(module, other)  # negative control: the seed decides the weights
    assert manifest["epochs"] == 0 and manifest["num_train"] == 1347  # all of digits' train split
