"""Embedding files: .npy and safetensors round trips, atomic writes, clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from latentbridge.io import load_embeddings, load_labels, save_embeddings

#: Advice no error message may give: loading user files must never unpickle.
PICKLE_ADVICE = re.compile(r"allow_pickle|pickle\.load|unsafe", re.IGNORECASE)


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    x = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    path = save_embeddings(tmp_path / f"deep/emb{suffix}", x)
    loaded = load_embeddings(path)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, x)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def test_safetensors_with_several_tensors_needs_a_key(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "two.safetensors"
    a, b = np.ones((2, 2), np.float32), np.zeros((2, 3), np.float32)
    save_file({"a": a, "b": b}, str(path))
    with pytest.raises(ValueError, match=r"holds 2 tensors \['a', 'b'\]"):
        load_embeddings(path)
    assert load_embeddings(path, key="b").shape == (2, 3)
    with pytest.raises(ValueError, match="key 'c' is not in"):
        load_embeddings(path, key="c")


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must end with one of"):
        load_embeddings(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match="no embedding file"):
        load_embeddings(tmp_path / "missing.npy")
    np.save(tmp_path / "v.npy", np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        load_embeddings(tmp_path / "v.npy")
    np.save(tmp_path / "i.npy", np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="floating-point"):
        load_embeddings(tmp_path / "i.npy")
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_embeddings(tmp_path / "d.npy")


def test_failed_write_leaves_the_previous_file(tmp_path: Path) -> None:
    path = save_embeddings(tmp_path / "e.npy", np.ones((2, 2)))
    with pytest.raises(ValueError, match="must end with"):
        save_embeddings(tmp_path / "e.txt", np.ones((2, 2)))
    with pytest.raises(TypeError, match="floating-point"):
        save_embeddings(path, np.array([[object()]], dtype=object))
    assert np.array_equal(load_embeddings(path), np.ones((2, 2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy"]


def _bytes_of(suffix: str) -> bytes:
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    import io

    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, x, allow_pickle=False)
        return buffer.getvalue()
    from safetensors.numpy import save

    return save({"embeddings": x})


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_a_truncated_file_is_reported_by_name(
    tmp_path_factory: pytest.TempPathFactory, suffix: str, fraction: float
) -> None:
    """Every prefix of a valid file (a write cut short) is refused with a ValueError naming it."""
    data = _bytes_of(suffix)
    path = tmp_path_factory.mktemp("cut") / f"cut{suffix}"
    path.write_bytes(data[: int(fraction * len(data))])
    with pytest.raises(ValueError, match=re.escape(repr(str(path)))) as error:
        load_embeddings(path)
    assert "not a valid" in str(error.value) and not PICKLE_ADVICE.search(str(error.value))
    path.write_bytes(data)  # the control: the whole file loads
    assert load_embeddings(path).shape == (6, 4)


@pytest.mark.parametrize(
    "content",
    [b"hello world\n", b"", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'  ", b"\x93NUMPY\x09\x00"],
    ids=["text", "empty", "bad-header", "unknown-version"],
)
def test_a_file_that_is_not_npy_is_refused_without_pickle_advice(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "renamed.npy"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"not a valid \.npy array file") as error:
        load_embeddings(path)
    assert str(path) in str(error.value) and not PICKLE_ADVICE.search(str(error.value))
    with pytest.raises(ValueError, match=r"not a valid \.npy array file"):
        load_labels(path)


def test_object_arrays_are_refused_without_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    path = tmp_path / "o.npy"
    np.save(path, np.array([[{"a": 1}]], dtype=object), allow_pickle=True)

    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickled a user file")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    for load in (load_embeddings, load_labels):
        with pytest.raises(ValueError, match="holds Python objects") as error:
            load(path)
        assert not PICKLE_ADVICE.search(str(error.value))


def test_safetensors_that_numpy_cannot_hold_or_read(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "bf16.safetensors"
    save_file({"e": torch.ones(3, 2, dtype=torch.bfloat16)}, str(path))
    # numpy has no bfloat16 unless a package such as ml_dtypes (imported by onnx) adds one
    with pytest.raises(ValueError, match=r"numpy cannot represent|must hold floating-point"):
        load_embeddings(path)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_embeddings(garbage)


def test_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "y.npy", np.array([0, 1, 1, 2]))
    assert load_labels(tmp_path / "y.npy").tolist() == [0, 1, 1, 2]
    np.save(tmp_path / "s.npy", np.array(["cat", "dog"]))
    assert load_labels(tmp_path / "s.npy").tolist() == ["cat", "dog"]
    np.save(tmp_path / "m.npy", np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="1-D"):
        load_labels(tmp_path / "m.npy")
    np.save(tmp_path / "f.npy", np.zeros(3))
    with pytest.raises(ValueError, match="integer, boolean or string"):
        load_labels(tmp_path / "f.npy")
    with pytest.raises(ValueError, match=r"must be a \.npy file"):
        load_labels(tmp_path / "y.csv")
    with pytest.raises(FileNotFoundError, match="no labels file"):
        load_labels(tmp_path / "missing.npy")


def test_save_refuses_what_load_would_refuse(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2-D"):
        save_embeddings(tmp_path / "e.npy", np.ones(3))
    with pytest.raises(TypeError, match="floating-point"):
        save_embeddings(tmp_path / "e.npy", np.ones((2, 2), dtype=np.int64))
    assert not list(tmp_path.iterdir())


def test_a_header_promising_more_data_than_the_file_holds(tmp_path: Path) -> None:
    """Detected from the sizes, before numpy would allocate the promised (1e12,) array."""
    import io

    buffer = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    np.lib.format.write_array_header_1_0(buffer, header)
    path = tmp_path / "huge.npy"
    path.write_bytes(buffer.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match="truncated"):
        load_embeddings(path)
