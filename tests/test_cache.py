"""The embedding cache: keys, verification, atomicity, resumption, and `latentbridge.encode`."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import multiprocessing.context
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentbridge import data
from latentbridge.cache import EmbeddingCache, cache_dir, fingerprint_inputs, make_key
from latentbridge.encoders import Encoder
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


@pytest.mark.parametrize(
    ("platform", "env", "root"),
    [
        ("linux", {}, "home/.cache/latentbridge"),
        ("linux", {"XDG_CACHE_HOME": "xdg"}, "xdg/latentbridge"),
        ("darwin", {}, "home/Library/Caches/latentbridge"),
        ("darwin", {"XDG_CACHE_HOME": "xdg"}, "home/Library/Caches/latentbridge"),
        ("win32", {"LOCALAPPDATA": "local"}, "local/latentbridge/Cache"),
        ("win32", {}, "home/AppData/Local/latentbridge/Cache"),
        ("win32", {"LATENTBRIDGE_CACHE": "mine", "LOCALAPPDATA": "local"}, "mine"),
    ],
)
def test_one_cache_root_for_embeddings_models_and_downloads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, platform: str, env: dict, root: str
) -> None:
    """The embedding cache, the encoders' unpacked models and dataset downloads share the root
    that ``cache_dir`` gives on each platform (with ``HOME`` and the variables set here)."""
    from latentbridge import encoders
    from latentbridge.data._common import data_root
    from latentbridge.encoders.text import MPNetBaseEncoder

    for name in ("LATENTBRIDGE_CACHE", "XDG_CACHE_HOME", "LOCALAPPDATA", "LATENTBRIDGE_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    monkeypatch.setattr("sys.platform", platform)
    expected = tmp_path / root
    assert encoders.cache_dir is cache_dir  # one function, re-exported
    assert cache_dir() == expected
    assert EmbeddingCache().root == expected
    assert data_root(None, "mnist") == expected / "mnist"  # where downloads go
    assert list(tmp_path.iterdir()) == []  # resolving creates nothing
    # the folder an encoder unpacks its model into
    mpnet = MPNetBaseEncoder()
    monkeypatch.setattr(mpnet, "fingerprint", lambda: "ab" * 32)
    unpacked = expected / "models" / f"all-mpnet-base-v2-{'ab' * 8}"
    unpacked.mkdir(parents=True)
    (unpacked / "modules.json").write_text("[]")
    assert mpnet._model_dir() == unpacked


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


class _MeanEncoder(Encoder):
    """A library encoder (the batching and progress of :class:`Encoder`) of the mean pixel."""

    name, modality = "test-mean", "vision"

    def __init__(self) -> None:
        super().__init__()
        self.progress_calls: list[tuple[int, int]] = []

    @property
    def dim(self) -> int:
        return 1

    def is_available(self) -> bool:
        return True

    def fingerprint(self) -> str:
        return "test-mean-v1"

    def _load(self) -> object:
        return object()

    def _encode_batch(self, batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1).mean(axis=1, keepdims=True)

    def encode(self, inputs, batch_size=64, progress=None):  # type: ignore[no-untyped-def]
        def recorded(done: int, total: int) -> None:
            self.progress_calls.append((done, total))
            progress(done, total)

        return super().encode(inputs, batch_size, None if progress is None else recorded)


def test_encoding_bar_names_the_encoder_and_follows_every_batch(
    tmp_path: Path, tiny_dataset: object, capsys: pytest.CaptureFixture[str]
) -> None:
    enc = _MeanEncoder()
    out = encode("test-tiny", enc, cache=EmbeddingCache(tmp_path), batch_size=4, chunk_size=8)
    assert out.shape == (30, 1)
    err = capsys.readouterr().err
    assert "encode test-tiny/train with test-mean" in err and "30/30" in err
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", err), err  # elapsed < remaining
    # per batch within each chunk (8, 8, 8 then 6 samples), in samples of the chunk
    assert enc.progress_calls == [(4, 8), (8, 8)] * 3 + [(4, 6), (6, 6)]
    encode("test-tiny", enc, cache=EmbeddingCache(tmp_path), progress=False)
    encode("test-tiny", enc, cache=EmbeddingCache(tmp_path), progress=False, refresh=True)
    assert capsys.readouterr().err == ""


# -- entries that pass the checksum but are not what the request needs ------------------------


def _forge(folder: Path, array: np.ndarray, **manifest: object) -> None:
    """Replace an entry's array by ``array`` and make the manifest's size and checksum match
    it (as an edited manifest, or one written by another version, would); ``manifest`` sets
    further manifest fields."""
    path = folder / "embeddings.npy"
    np.save(path, array, allow_pickle=True)
    content = json.loads((folder / "manifest.json").read_text())
    content["bytes"] = path.stat().st_size
    content["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    content.update(manifest)
    (folder / "manifest.json").write_text(json.dumps(content))


FORGERIES = {
    "float64, manifest says so": (lambda: _array().astype(np.float64), {"dtype": "<f8"}),
    "float64, manifest says float32": (lambda: _array().astype(np.float64), {}),
    "narrower, manifest unchanged": (lambda: _array(dim=3), {}),
    "1-D, manifest says so": (lambda: _array().ravel(), {"shape": [40]}),
    "fewer samples, manifest says so": (lambda: _array(n=9), {"shape": [9, 4]}),
    "object array, manifest says so": (
        lambda: np.array([{"a": 1}] * 10, dtype=object),
        {"dtype": "|O", "shape": [10]},
    ),
    "object array, manifest says float32": (
        lambda: np.array([[1.5] * 4] * 10, dtype=object),
        {},
    ),
    "manifest is a list": (lambda: _array(), None),
}


@pytest.mark.parametrize("name", FORGERIES)
def test_entries_of_another_shape_or_dtype_are_not_served(tmp_path: Path, name: str) -> None:
    make, manifest = FORGERIES[name]
    fields = {**FIELDS, "num_samples": 10}
    cache = EmbeddingCache(tmp_path)

    def forge() -> Path:
        folder = cache.put(fields, _array())
        _forge(folder, make(), **(manifest or {}))
        if manifest is None:
            (folder / "manifest.json").write_text("[1, 2]")
        return folder

    folder = forge()
    with pytest.warns(UserWarning, match="unusable"):
        assert cache.get(fields) is None
    assert not folder.exists()
    # compute (the command's path) recomputes it instead of failing
    forge()
    with pytest.warns(UserWarning, match="unusable"):
        out = cache.compute(fields, 10, lambda a, b: _array()[a:b], chunk_size=4)
    assert out.dtype == np.float32 and np.array_equal(out, _array())
    assert np.array_equal(cache.get(fields), _array())  # and the entry is valid again


def test_sample_count_of_the_caller_is_checked(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)  # FIELDS state no sample count: the caller's is used
    cache.put(FIELDS, _array(n=10))
    assert cache.get(FIELDS, num_samples=10) is not None
    with pytest.warns(UserWarning, match="holds 10 samples, expected 12"):
        assert cache.get(FIELDS, num_samples=12) is None
    cache.put(FIELDS, _array(n=10))
    with pytest.warns(UserWarning, match="holds 10 samples, expected 12"):
        out = cache.compute(FIELDS, 12, lambda a, b: _array(n=12)[a:b])
    assert np.array_equal(out, _array(n=12))
    with pytest.raises(ValueError, match="num_samples must be a non-negative integer, got -1"):
        cache.compute(FIELDS, -1, lambda a, b: _array()[a:b])
    with pytest.raises(ValueError, match="num_samples must be a non-negative integer, got True"):
        cache.get(FIELDS, num_samples=True)


def test_put_refuses_what_get_would_refuse(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(TypeError, match=r"array must be a numpy\.ndarray, got list"):
        cache.put(FIELDS, [[1.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="array has dtype float64, expected float32"):
        cache.put(FIELDS, _array().astype(np.float64))
    with pytest.raises(ValueError, match=r"array has shape \(40,\), expected \(N, dim\)"):
        cache.put(FIELDS, _array().ravel())
    bad = _array()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="array holds non-finite values"):
        cache.put(FIELDS, bad)
    assert not (tmp_path / "embeddings").exists() or not any(
        (tmp_path / "embeddings").rglob("*.npy")
    )


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39])
def test_compute_refuses_non_finite_embeddings(tmp_path: Path, value: float) -> None:
    cache = EmbeddingCache(tmp_path)
    full = _array(n=10).astype(np.float64)
    full[7, 2] = value  # 1e39 overflows float32 to inf

    with pytest.raises(ValueError, match=r"non-finite values .* samples 5:10, first at sample 7"):
        cache.compute(FIELDS, 10, lambda a, b: full[a:b], chunk_size=5)
    assert cache.get(FIELDS) is None
    # the finished first chunk is kept for the resumed run
    assert len(list((tmp_path / "partial").rglob("chunk_*.npy"))) == 1


def test_unusable_partial_chunks_are_recomputed(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    full = _array(n=10)
    with pytest.raises(_Interrupted):
        cache.compute(FIELDS, 10, lambda a, b: full[a:b] if a == 0 else _raise(), chunk_size=5)
    partial = next((tmp_path / "partial").iterdir())
    chunk = partial / "chunk_000000000000_000000000005.npy"
    np.save(chunk, np.array([[1.0] * 4] * 5, dtype=object), allow_pickle=True)
    sums = json.loads((partial / "chunks.json").read_text())
    sums[chunk.name] = hashlib.sha256(chunk.read_bytes()).hexdigest()  # checksum matches
    (partial / "chunks.json").write_text(json.dumps(sums))
    calls: list[int] = []
    out = cache.compute(FIELDS, 10, lambda a, b: calls.append(a) or full[a:b], chunk_size=5)
    assert np.array_equal(out, full) and calls == [0, 5]


def _raise() -> np.ndarray:
    raise _Interrupted


# -- several processes sharing one cache ---------------------------------------------------------


def _context() -> multiprocessing.context.BaseContext:
    # fork starts a worker in milliseconds; spawn (re-importing torch) is the portable fallback
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _put_worker(root: str, barrier: Any, rounds: int, lock: bool) -> None:
    if not lock:  # the fallback of a platform without file locks: atomic renames only
        from latentbridge import _files

        _files._acquire = lambda fd, on_wait: None  # type: ignore[assignment]
        _files._release = lambda fd: None  # type: ignore[assignment]
    cache = EmbeddingCache(root)
    barrier.wait()
    for _ in range(rounds):
        cache.put(FIELDS, _array(n=200, dim=16))
        got = cache.get(FIELDS)
        if got is not None and not np.array_equal(got, _array(n=200, dim=16)):
            raise SystemExit(3)


@pytest.mark.parametrize("lock", [True, False], ids=["locked", "no-lock-fallback"])
def test_concurrent_puts_of_one_entry(tmp_path: Path, lock: bool) -> None:
    ctx = _context()
    barrier = ctx.Barrier(4)
    workers = [
        ctx.Process(target=_put_worker, args=(str(tmp_path), barrier, 8, lock)) for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert np.array_equal(EmbeddingCache(tmp_path).get(FIELDS), _array(n=200, dim=16))
    shard = (tmp_path / "embeddings" / make_key(FIELDS)[:2]).iterdir()
    assert [p.name for p in shard] == [make_key(FIELDS)]  # no staging or trash left


def _compute_worker(root: str, barrier: Any, log: str) -> None:
    full = _array(n=12, dim=3)

    def encode_range(start: int, stop: int) -> np.ndarray:
        with open(log, "a") as handle:  # O_APPEND: one whole line per write
            handle.write(f"{start}\n")
        time.sleep(0.02)
        return full[start:stop]

    barrier.wait()
    out = EmbeddingCache(root).compute(FIELDS, 12, encode_range, chunk_size=3)
    if not np.array_equal(out, full):
        raise SystemExit(3)


def test_concurrent_computes_of_one_entry_encode_it_once(tmp_path: Path) -> None:
    ctx = _context()
    barrier = ctx.Barrier(3)
    log = tmp_path / "calls.log"
    args = (str(tmp_path / "cache"), barrier, str(log))
    workers = [ctx.Process(target=_compute_worker, args=args) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    # one process encoded the four chunks; the others waited for it and read its entry
    assert sorted(int(line) for line in log.read_text().split()) == [0, 3, 6, 9]
    assert not (tmp_path / "cache" / "partial").exists() or not any(
        (tmp_path / "cache" / "partial").iterdir()
    )
