"""Reading and writing embedding files in safe formats: ``.npy`` and safetensors.

Nothing here unpickles: a ``.npy`` file is read only after its header says it holds a plain
numeric array (an object array, which needs pickle, is refused), and safetensors files hold raw
tensors only. A file that is not what its suffix claims (truncated, corrupted, another format)
raises ``ValueError`` naming it. safetensors is an optional dependency
(``pip install safetensors``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ._files import atomic_write

__all__ = ["SUFFIXES", "check_embedding_path", "load_embeddings", "load_labels", "save_embeddings"]

#: The embedding file formats, by suffix.
SUFFIXES = (".npy", ".safetensors")


def check_embedding_path(path: str | os.PathLike[str], argument: str = "path") -> str:
    """The format (``".npy"`` or ``".safetensors"``) of ``path``, from its suffix.

    Raises ``ValueError`` naming ``argument`` for any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{argument} must end with one of {list(SUFFIXES)}, got {str(path)!r}")
    return suffix


def npy_header(file: Path, argument: str = "") -> tuple[tuple[int, ...], bool, Any, int]:
    """``(shape, fortran_order, dtype, data offset)`` of a ``.npy`` file, checked without
    reading the data: the NumPy magic and a supported version, a parseable header, no Python
    objects (never unpickles) and a file as long as its header promises. ``argument`` (e.g.
    ``"latents"``) starts the error messages."""
    fmt = np.lib.format
    name = f"{argument} {str(file)!r}" if argument else repr(str(file))
    invalid = f"{name} is not a valid .npy array file"
    with file.open("rb") as handle:
        try:
            version = fmt.read_magic(handle)
        except (ValueError, EOFError):
            raise ValueError(f"{invalid}: it does not start with the NumPy header") from None
        # 3.0 differs from 2.0 only for structured dtypes with non-latin-1 field names
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{invalid}: format version {version} is not supported")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        try:
            shape, fortran_order, dtype = read_header(handle)
        except Exception:  # any failure to parse the header (tokenize, syntax) means not .npy
            # numpy's own message may advise allow_pickle=True: never pass that on
            raise ValueError(f"{invalid}: its header is unreadable") from None
        offset = handle.tell()
        size = os.fstat(handle.fileno()).st_size
    if dtype.hasobject:
        raise ValueError(
            f"{name} holds Python objects (dtype {dtype}), which only unpickling could read; "
            "save a numeric array instead"
        )
    # compare sizes first: a truncated file must not make numpy allocate what it promises
    expected = offset + math.prod(shape) * dtype.itemsize
    if size < expected:
        raise ValueError(
            f"{invalid}: it is truncated (its header promises {expected} bytes, it has {size})"
        )
    return tuple(shape), bool(fortran_order), dtype, offset


def _read_npy(file: Path) -> np.ndarray:
    """The array of a ``.npy`` file, checked from its header first; never unpickles."""
    npy_header(file)
    with file.open("rb") as handle:
        try:
            return np.asarray(np.lib.format.read_array(handle, allow_pickle=False))
        except (ValueError, EOFError, OSError):
            raise ValueError(
                f"{str(file)!r} is not a valid .npy array file: the data is corrupted"
            ) from None


def _read_safetensors(file: Path, key: str | None) -> np.ndarray:
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading .safetensors needs the safetensors package: pip install safetensors"
        ) from error
    try:
        tensors = load_file(str(file))
    except (SafetensorError, ValueError) as error:
        raise ValueError(f"{str(file)!r} is not a valid safetensors file: {error}") from None
    except TypeError as error:  # a dtype numpy lacks, such as bfloat16
        raise ValueError(
            f"{str(file)!r} holds a tensor numpy cannot represent ({error}); save it as float32"
        ) from None
    if key is None:
        if len(tensors) != 1:
            raise ValueError(
                f"{str(file)!r} holds {len(tensors)} tensors {sorted(tensors)}; choose one with key"
            )
        return next(iter(tensors.values()))
    if key not in tensors:
        raise ValueError(f"key {key!r} is not in {str(file)!r}; it holds {sorted(tensors)}")
    return tensors[key]


def _existing(path: str | os.PathLike[str], argument: str) -> Path:
    file = Path(path)
    if file.is_dir():
        raise IsADirectoryError(f"{argument} {str(file)!r} is a folder, not a file")
    if not file.is_file():
        raise FileNotFoundError(f"no {argument} at {str(file)!r}")
    return file


def load_embeddings(path: str | os.PathLike[str], key: str | None = None) -> np.ndarray:
    """Load a 2-D floating-point embedding matrix ``(N, D)`` from ``.npy`` or ``.safetensors``.

    A safetensors file holding one tensor needs no ``key``; with several, ``key`` names one.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for an
    invalid one (wrong suffix, not a valid file of its format, an object array, not 2-D, not
    floating point).
    """
    suffix = check_embedding_path(path)
    file = _existing(path, "embedding file")
    if suffix == ".npy":
        if key is not None:
            raise ValueError("key applies to safetensors files only, not to .npy")
        array = _read_npy(file)
    else:
        array = _read_safetensors(file, key)
    if array.ndim != 2:
        raise ValueError(f"{str(file)!r} must hold a 2-D (N, D) array, got shape {array.shape}")
    if array.dtype.kind != "f":
        raise ValueError(f"{str(file)!r} must hold floating-point values, got {array.dtype}")
    return array


def load_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Load class labels ``(N,)`` (integers, booleans or strings) from a ``.npy`` file.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for one
    that is not a valid ``.npy`` array file, holds objects, or is not 1-D.
    """
    if Path(path).suffix.lower() != ".npy":
        raise ValueError(f"labels must be a .npy file, got {str(path)!r}")
    file = _existing(path, "labels file")
    array = _read_npy(file)
    if array.ndim != 1:
        raise ValueError(f"{str(file)!r} must hold a 1-D (N,) array, got shape {array.shape}")
    if array.dtype.kind not in "biuUS":
        raise ValueError(
            f"{str(file)!r} must hold integer, boolean or string labels, got {array.dtype}"
        )
    return array


def save_embeddings(
    path: str | os.PathLike[str], embeddings: np.ndarray, key: str = "embeddings"
) -> Path:
    """Write ``embeddings`` ``(N, D)`` atomically (temporary file, then rename).

    The format follows the suffix (``.npy`` or ``.safetensors``); what is written is what
    :func:`load_embeddings` reads back: a 2-D floating-point array.
    """
    file = Path(path)
    suffix = check_embedding_path(file)
    array = np.ascontiguousarray(embeddings)
    if array.dtype.kind != "f":
        raise TypeError(
            f"embeddings must hold floating-point numbers, got dtype {array.dtype}; cast them "
            "first, e.g. embeddings.astype(np.float32)"
        )
    if array.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (N, D) array, got shape {array.shape}")

    def write(handle: BinaryIO) -> None:
        if suffix == ".npy":
            np.save(handle, array, allow_pickle=False)
        else:
            from safetensors.numpy import save

            handle.write(save({key: array}))

    atomic_write(file, write)
    return file
