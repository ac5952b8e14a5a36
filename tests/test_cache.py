"""The embedding cache: keys, verification, atomicity, resumption, and `latentbridge.encode`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latentbridge import data
from latentbridge.cache import EmbeddingCache, cache_dir, fingerprint_inputs, make_key
from latentbridge.encoding import encode


class _Interrupted(Exception):
    """Stands for a stop (Ctrl-C, a killed job) in the middle of an encoding."""


FIELDS = {"encoder": "e", "encoder_fingerprint": "f1", "dataset": "d", "split": "train"}


def _array(n: int = 10, dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_round_trip_and_layout(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    assert cache.get(FIELDS) is None
    folder = cache.put(FIELDS, _array())
    assert sorted(p.name for p in folder.iterdir()) == ["embeddings.npy", "manifest.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["fields"] == FIELDS and manifest["shape"] == [10, 4]
    assert np.array_equal(cache.get(FIELDS), _array())
    assert folder.name == make_key(FIELDS)


def test_key_separates_encoders_weights_and_options(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put(FIELDS, _array())
    for change in (
        {"encoder": "other"},
        {"encoder_fingerprint": "f2"},
        {"split": "test"},
        {"options": {"subset": 5}},
    ):
        assert cache.get({**FIELDS, **change}) is None, change
    assert make_key({"a": 1, "b": 2}) == make_key({"b": 2, "a": 1})


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "missing", "foreign"])
def test_corrupted_entries_are_detected_and_removed(tmp_path: Path, damage: str) -> None:
    cache = EmbeddingCache(tmp_path)
    folder = cache.put(FIELDS, _array())
    array, manifest = folder / "embeddings.npy", folder / "manifest.json"
    if damage == "truncate":
        array.write_bytes(array.read_bytes()[:-7])
    elif damage == "flip":
        raw = bytearray(array.read_bytes())
        raw[-1] ^= 0xFF
        array.write_bytes(bytes(raw))
    elif damage == "manifest":
        manifest.write_text("{not json")
    elif damage == "missing":
        array.unlink()
    else:  # an entry whose manifest describes other fields, under this key
        content = json.loads(manifest.read_text())
        content["fields"]["encoder"] = "impostor"
        manifest.write_text(json.dumps(content))
    with pytest.warns(UserWarning, match="unusable"):
        assert cache.get(FIELDS) is None
    assert not folder.exists()


def test_compute_resumes_after_an_interruption(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    full = _array(n=25)
    calls: list[tuple[int, int]] = []
    interrupt = {"at": 20}

    def flaky(start: int, stop: int) -> np.ndarray:
        calls.append((start, stop))
        if start == interrupt["at"]:
            raise _Interrupted
        return full[start:stop]

    with pytest.raises(_Interrupted):
        cache.compute(FIELDS, 25, flaky, chunk_size=10)
    assert calls == [(0, 10), (10, 20), (20, 25)]
    assert cache.get(FIELDS) is None  # nothing half-written is served
    calls.clear()
    interrupt["at"] = -1
    out = cache.compute(FIELDS, 25, flaky, chunk_size=10)
    assert calls == [(20, 25)]  # finished chunks were kept
    assert np.array_equal(out, full)
    assert not (tmp_path / "partial").exists() or not any((tmp_path / "partial").iterdir())
    calls.clear()
    assert np.array_equal(cache.compute(FIELDS, 25, flaky, chunk_size=10), full)
    assert calls == []  # served from the cache


def test_corrupted_partial_chunk_is_recomputed(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    full = _array(n=20)
    calls: list[int] = []
    interrupt = {"at": 10}

    def stop_at_second(start: int, stop: int) -> np.ndarray:
        calls.append(start)
        if start == interrupt["at"]:
            raise _Interrupted
        return full[start:stop]

    with pytest.raises(_Interrupted):
        cache.compute(FIELDS, 20, stop_at_second, chunk_size=10)
    chunk = next((tmp_path / "partial").rglob("chunk_*.npy"))
    chunk.write_bytes(chunk.read_bytes()[:-3])
    calls.clear()
    interrupt["at"] = -1
    assert np.array_equal(cache.compute(FIELDS, 20, stop_at_second, chunk_size=10), full)
    assert calls == [0, 10]


def test_compute_rejects_wrong_shapes_and_refresh_recomputes(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(ValueError, match="expected \\(5, dim\\)"):
        cache.compute(FIELDS, 5, lambda a, b: np.zeros((1, 3)), chunk_size=5)
    with pytest.raises(ValueError, match="chunk_size"):
        cache.compute(FIELDS, 5, lambda a, b: np.zeros((b - a, 3)), chunk_size=0)
    cache.put(FIELDS, np.zeros((5, 3), np.float32))
    out = cache.compute(FIELDS, 5, lambda a, b: np.ones((b - a, 3)), refresh=True)
    assert np.array_equal(out, np.ones((5, 3))) and np.array_equal(cache.get(FIELDS), out)


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LATENTBRIDGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "latentbridge"
    assert not (tmp_path / "xdg").exists()  # nothing created until written


def test_fingerprint_inputs() -> None:
    a = np.zeros((2, 3), np.uint8)
    assert fingerprint_inputs(a) == fingerprint_inputs(a.copy())
    assert fingerprint_inputs(a) != fingerprint_inputs(a.reshape(3, 2))
    assert fingerprint_inputs(["ab", "c"]) != fingerprint_inputs(["a", "bc"])
    with pytest.raises(TypeError, match="inputs must be"):
        fingerprint_inputs([1, 2])


class _Doubler:
    """A stub vision encoder: the mean pixel, twice, per image."""

    name, modality, dim = "doubler", "vision", 2

    def __init__(self) -> None:
        self.seen = 0

    def fingerprint(self) -> str:
        return "doubler-v1"

    def encode(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        self.seen += len(inputs)
        mean = inputs.reshape(len(inputs), -1).mean(axis=1, dtype=np.float64)
        return np.stack([mean, 2 * mean], axis=1).astype(np.float32)


@pytest.fixture
def tiny_dataset() -> object:
    images = np.random.default_rng(0).integers(0, 255, (30, 4, 4), dtype=np.uint8)

    def loader(split: str, subset: int | None = None) -> data.Dataset:
        x = images if subset is None else images[:subset]
        return data.Dataset("test-tiny", split, "vision", x, np.zeros(len(x), np.int64), ("a",))

    spec = data.DatasetSpec(
        name="test-tiny",
        modality="vision",
        splits=("train",),
        num_classes=1,
        size={"train": 30},
        loader=loader,
        is_available=lambda: True,
        install_hint="",
        source="tests",
        license="-",
    )
    data.register(spec, overwrite=True)
    yield spec
    data._REGISTRY.pop("test-tiny", None)


def test_encode_caches_and_separates_options(
    tmp_path: Path, tiny_dataset: object, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = EmbeddingCache(tmp_path)
    enc = _Doubler()
    first = encode("test-tiny", enc, cache=cache, chunk_size=8)
    assert first.shape == (30, 2) and first.dtype == np.float32 and enc.seen == 30
    assert "encode test-tiny/train with doubler" in capsys.readouterr().err
    again = encode("test-tiny", enc, cache=cache, progress=False)
    assert np.array_equal(first, again) and enc.seen == 30
    subset = encode("test-tiny", enc, cache=cache, dataset_options={"subset": 10}, progress=False)
    assert np.array_equal(subset, first[:10]) and enc.seen == 40


def test_encode_errors(tmp_path: Path, tiny_dataset: object) -> None:
    class TextEncoder(_Doubler):
        modality = "text"

    with pytest.raises(ValueError, match="encodes text but dataset 'test-tiny' is vision"):
        encode("test-tiny", TextEncoder(), cache=EmbeddingCache(tmp_path))
    with pytest.raises(ValueError, match="dataset must be one of"):
        encode("no-such-dataset", _Doubler(), cache=EmbeddingCache(tmp_path))
