"""Embedding files: .npy and safetensors round trips, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentbridge.io import load_embeddings, save_embeddings


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
    np.save(tmp_path / "o.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        load_embeddings(tmp_path / "o.npy")  # never unpickles


def test_failed_write_leaves_the_previous_file(tmp_path: Path) -> None:
    path = save_embeddings(tmp_path / "e.npy", np.ones((2, 2)))
    with pytest.raises(ValueError, match="must end with"):
        save_embeddings(tmp_path / "e.txt", np.ones((2, 2)))
    with pytest.raises((ValueError, TypeError)):
        save_embeddings(path, np.array([[object()]], dtype=object))
    assert np.array_equal(load_embeddings(path), np.ones((2, 2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy"]
