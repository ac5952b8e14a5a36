"""A content-addressed embedding cache: encode once, verify on every read, resume after a stop.

An entry is keyed by the SHA-256 of a canonical JSON of everything that determines the
embeddings: the encoder's name and weights fingerprint, the dataset, split and loading options,
and a fingerprint of the inputs themselves. It is stored as::

    <root>/embeddings/<key[:2]>/<key>/embeddings.npy   float32 (N, dim), plain .npy
    <root>/embeddings/<key[:2]>/<key>/manifest.json    the key fields, shape, dtype, SHA-256

written into a temporary folder and renamed into place (atomic on one file system). A read checks
the manifest against the request and the array's SHA-256 against the manifest; a corrupted or
truncated entry is reported (a warning), deleted and recomputed. While an entry is computed,
finished chunks are kept under ``<root>/partial/<key>/``, so an interrupted encoding resumes from
the last finished chunk.

The root is ``$LATENTBRIDGE_CACHE`` if set, else the platform's user cache folder
(``$XDG_CACHE_HOME/latentbridge`` or ``~/.cache/latentbridge`` on Linux,
``~/Library/Caches/latentbridge`` on macOS, ``%LOCALAPPDATA%\\latentbridge\\Cache`` on Windows).
Nothing is created until something is written. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._files import atomic_write, sha256_file
from ._validation import warn_user

__all__ = ["EmbeddingCache", "cache_dir", "fingerprint_inputs", "make_key"]

FORMAT_VERSION = 1


def cache_dir() -> Path:
    """The cache root: ``$LATENTBRIDGE_CACHE``, else the platform's user cache folder."""
    explicit = os.environ.get("LATENTBRIDGE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "latentbridge" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "latentbridge"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "latentbridge"


def _canonical(fields: Mapping[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def make_key(fields: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of the canonical JSON of ``fields``."""
    return hashlib.sha256(_canonical(fields).encode("utf-8")).hexdigest()


def fingerprint_inputs(inputs: Any) -> str:
    """SHA-256 of the inputs' content: array bytes with dtype and shape, or the texts."""
    digest = hashlib.sha256()
    if isinstance(inputs, np.ndarray):
        digest.update(f"array:{inputs.dtype.str}:{inputs.shape}".encode())
        digest.update(np.ascontiguousarray(inputs).tobytes())
    elif isinstance(inputs, (list, tuple)) and all(isinstance(t, str) for t in inputs):
        digest.update(f"texts:{len(inputs)}".encode())
        for text in inputs:
            encoded = text.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little"))
            digest.update(encoded)
    else:
        raise TypeError(
            "inputs must be a numpy array or a list of strings to be fingerprinted, got "
            f"{type(inputs).__name__}"
        )
    return digest.hexdigest()


def _write_npy_atomic(path: Path, array: np.ndarray) -> str:
    """Write ``array`` to ``path`` atomically; returns its SHA-256."""
    atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))
    return sha256_file(path)


@dataclass(frozen=True)
class _Entry:
    folder: Path

    @property
    def array(self) -> Path:
        return self.folder / "embeddings.npy"

    @property
    def manifest(self) -> Path:
        return self.folder / "manifest.json"


class EmbeddingCache:
    """Verified, atomic, resumable storage of embedding matrices keyed by their provenance."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_dir()

    def __repr__(self) -> str:
        return f"EmbeddingCache(root={str(self.root)!r})"

    def _entry(self, key: str) -> _Entry:
        return _Entry(self.root / "embeddings" / key[:2] / key)

    def _partial(self, key: str) -> Path:
        return self.root / "partial" / key

    # -- reading -------------------------------------------------------------------------

    def get(self, fields: Mapping[str, Any]) -> np.ndarray | None:
        """The cached array for ``fields``, or None (absent, or corrupted and now removed)."""
        key = make_key(fields)
        entry = self._entry(key)
        if not entry.folder.exists():
            return None
        problem = self._verify(entry, fields)
        if problem is None:
            return np.load(entry.array, allow_pickle=False)
        warn_user(f"embedding cache entry {key[:12]} is unusable ({problem}); recomputing it")
        shutil.rmtree(entry.folder, ignore_errors=True)
        return None

    def _verify(self, entry: _Entry, fields: Mapping[str, Any]) -> str | None:
        try:
            manifest = json.loads(entry.manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            return f"unreadable manifest: {error}"
        if manifest.get("fields") != json.loads(_canonical(fields)):
            return "its manifest describes other encoder, data or options"
        if not entry.array.is_file():
            return "the array file is missing"
        if entry.array.stat().st_size != manifest.get("bytes"):
            return "the array file has the wrong size (truncated?)"
        if sha256_file(entry.array) != manifest.get("sha256"):
            return "the array file does not match its checksum"
        return None

    # -- writing -------------------------------------------------------------------------

    def put(self, fields: Mapping[str, Any], array: np.ndarray) -> Path:
        """Store ``array`` for ``fields`` atomically; returns the entry's folder."""
        key = make_key(fields)
        entry = self._entry(key)
        entry.folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=entry.folder.parent, prefix=f".{key[:12]}."))
        try:
            array_path = staging / "embeddings.npy"
            sha = _write_npy_atomic(array_path, np.ascontiguousarray(array))
            manifest = {
                "format": FORMAT_VERSION,
                "key": key,
                "fields": json.loads(_canonical(fields)),
                "shape": list(array.shape),
                "dtype": array.dtype.str,
                "bytes": array_path.stat().st_size,
                "sha256": sha,
            }
            (staging / "manifest.json").write_text(
                json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8"
            )
            if entry.folder.exists():
                shutil.rmtree(entry.folder)
            os.replace(staging, entry.folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return entry.folder

    def compute(
        self,
        fields: Mapping[str, Any],
        num_samples: int,
        encode_range: Callable[[int, int], np.ndarray],
        *,
        chunk_size: int = 4096,
        progress: Callable[[int, int], None] | None = None,
        refresh: bool = False,
    ) -> np.ndarray:
        """The cached array for ``fields``, computing it chunk by chunk if absent.

        ``encode_range(start, stop)`` returns the embeddings of samples ``start:stop`` as a 2-D
        float32 array. Finished chunks are stored as they complete; after an interruption the
        next call reuses them (each verified by its checksum) and computes only the rest.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if not refresh:
            cached = self.get(fields)
            if cached is not None:
                if progress is not None:
                    progress(num_samples, num_samples)
                return cached
        key = make_key(fields)
        partial = self._partial(key)
        partial.mkdir(parents=True, exist_ok=True)
        checksums_file = partial / "chunks.json"
        try:
            checksums: dict[str, str] = json.loads(checksums_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            checksums = {}
        chunks = []
        for start in range(0, num_samples, chunk_size):
            stop = min(start + chunk_size, num_samples)
            name = f"chunk_{start:012d}_{stop:012d}.npy"
            path = partial / name
            chunk = None
            if not refresh and path.is_file() and checksums.get(name) == sha256_file(path):
                chunk = np.load(path, allow_pickle=False)
            if chunk is None:
                chunk = np.asarray(encode_range(start, stop), dtype=np.float32)
                if chunk.ndim != 2 or chunk.shape[0] != stop - start:
                    raise ValueError(
                        f"the encoder returned shape {chunk.shape} for samples {start}:{stop}; "
                        f"expected ({stop - start}, dim)"
                    )
                checksums[name] = _write_npy_atomic(path, chunk)
                tmp = checksums_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(checksums), encoding="utf-8")
                os.replace(tmp, checksums_file)
            chunks.append(chunk)
            if progress is not None:
                progress(stop, num_samples)
        if chunks:
            array = np.concatenate(chunks)
        else:
            array = np.asarray(encode_range(0, 0), dtype=np.float32)
        self.put(fields, array)
        shutil.rmtree(partial, ignore_errors=True)
        return array

    def clear(self) -> None:
        """Delete every entry and partial result under the root."""
        for sub in ("embeddings", "partial"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
