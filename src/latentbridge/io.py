"""Reading and writing embedding files in safe formats: ``.npy`` and safetensors.

Nothing here unpickles: ``.npy`` files are read with ``allow_pickle=False``, safetensors files
hold raw tensors only. safetensors is an optional dependency (``pip install safetensors``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ._files import atomic_write

__all__ = ["load_embeddings", "save_embeddings"]

_SUFFIXES = (".npy", ".safetensors")


def _suffix(path: Path, argument: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"{argument} must end with one of {list(_SUFFIXES)}, got {str(path)!r}")
    return suffix


def load_embeddings(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """Load a 2-D embedding matrix ``(N, D)`` from ``.npy`` or ``.safetensors``.

    A safetensors file holding one tensor needs no ``key``; with several, ``key`` names one.
    """
    file = Path(path)
    suffix = _suffix(file, "path")
    if not file.is_file():
        raise FileNotFoundError(f"no embedding file at {str(file)!r}")
    if suffix == ".npy":
        if key is not None:
            raise ValueError("key applies to safetensors files only, not to .npy")
        array = np.load(file, allow_pickle=False)
    else:
        try:
            from safetensors.numpy import load_file
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "reading .safetensors needs the safetensors package: pip install safetensors"
            ) from error
        tensors = load_file(str(file))
        if key is None:
            if len(tensors) != 1:
                raise ValueError(
                    f"{str(file)!r} holds {len(tensors)} tensors {sorted(tensors)}; choose one "
                    "with key"
                )
            array = next(iter(tensors.values()))
        elif key not in tensors:
            raise ValueError(f"key {key!r} is not in {str(file)!r}; it holds {sorted(tensors)}")
        else:
            array = tensors[key]
    if array.ndim != 2:
        raise ValueError(f"{str(file)!r} must hold a 2-D (N, D) array, got shape {array.shape}")
    if array.dtype.kind != "f":
        raise ValueError(f"{str(file)!r} must hold floating-point values, got {array.dtype}")
    return array


def save_embeddings(
    path: str | os.PathLike[str], embeddings: np.ndarray, key: str = "embeddings"
) -> Path:
    """Write ``embeddings`` atomically (temporary file, then rename) as ``.npy`` or safetensors."""
    file = Path(path)
    suffix = _suffix(file, "path")
    array = np.ascontiguousarray(embeddings)

    def write(handle: BinaryIO) -> None:
        if suffix == ".npy":
            np.save(handle, array, allow_pickle=False)
        else:
            from safetensors.numpy import save

            handle.write(save({key: array}))

    atomic_write(file, write)
    return file
