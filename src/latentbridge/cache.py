"""A content-addressed embedding cache: encode once, verify on every read, resume after a stop.

An entry is keyed by the SHA-256 of a canonical JSON of everything that determines the
embeddings: the encoder's name and weights fingerprint, the dataset, split and loading options,
and a fingerprint of the inputs themselves. It is stored as::

    <root>/embeddings/<key[:2]>/<key>/embeddings.npy   float32 (N, dim), plain .npy
    <root>/embeddings/<key[:2]>/<key>/manifest.json    the key fields, shape, dtype, SHA-256

written into a temporary folder and renamed into place (atomic on one file system). A read
checks the manifest against the request, its shape, dtype and sample count against the array's
``.npy`` header (2-D float32, ``N`` rows where the request or the caller states ``N``) and the
array's SHA-256 against the manifest, and loads it without unpickling; an entry that fails any
check -- truncated, edited, written by another version, an object array -- is reported (a
warning), deleted and recomputed. While an entry is computed, finished chunks are kept under
``<root>/partial/<key>/``, so an interrupted encoding resumes from the last finished chunk.

Several processes may share a cache. Writers of one key take an exclusive lock
(``<root>/locks/<key>.lock``, see :func:`latentbridge._files.file_lock`): a second
:meth:`EmbeddingCache.compute` of a key waits for the first and then reads its entry instead of
encoding again. Readers take no lock: an entry folder is never changed in place, only renamed
in or out whole. Two writers of a key write the same bytes, so when an entry appears while
another is being stored, the first complete entry wins. Temporary files and folders are
writer-tagged; those of killed writers are removed by the first write of an
:class:`EmbeddingCache` (:func:`latentbridge._files.remove_stale_temps` states the rule).

The root is ``$LATENTBRIDGE_CACHE`` if set, else the platform's user cache folder
(``$XDG_CACHE_HOME/latentbridge`` or ``~/.cache/latentbridge`` on Linux,
``~/Library/Caches/latentbridge`` on macOS, ``%LOCALAPPDATA%\\latentbridge\\Cache`` on Windows).
Nothing is created until something is written. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._files import (
    atomic_write,
    file_lock,
    make_temp_dir,
    remove_stale_temps,
    sha256_file,
    temp_name,
    write_bytes_atomic,
)
from ._validation import check_positive_int, warn_user

__all__ = ["EmbeddingCache", "cache_dir", "fingerprint_inputs", "make_key"]

FORMAT_VERSION = 1


def cache_dir() -> Path:
    """The root of everything latentbridge caches (nothing is created here).

    ``$LATENTBRIDGE_CACHE`` if set, else the platform's user cache folder:
    ``$XDG_CACHE_HOME/latentbridge`` or ``~/.cache/latentbridge`` on Linux,
    ``~/Library/Caches/latentbridge`` on macOS, ``%LOCALAPPDATA%\\latentbridge\\Cache`` on
    Windows. The embedding cache (:class:`EmbeddingCache`), the encoders' unpacked models
    (``models/``) and downloaded datasets all live under it.
    """
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


_FLOAT32 = np.dtype(np.float32)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """(shape, dtype) from the header of the ``.npy`` file ``path`` (the data is not read)."""
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    return tuple(shape), dtype


def _load_npy(path: Path) -> np.ndarray:
    """Load a ``.npy`` file without unpickling; ValueError for anything but an array."""
    array = np.load(path, allow_pickle=False)
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path.name} holds {type(array).__name__}, not an array")
    return array


def _shape_problem(
    shape: tuple[int, ...], dtype: np.dtype[Any], what: str, rows: int | None
) -> str | None:
    if dtype != _FLOAT32:
        return f"{what} has dtype {dtype}, expected float32"
    if len(shape) != 2:
        return f"{what} has shape {shape}, expected (N, dim)"
    if rows is not None and shape[0] != rows:
        return f"{what} holds {shape[0]} samples, expected {rows}"
    return None


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
        self._cleaned = False

    def __repr__(self) -> str:
        return f"EmbeddingCache(root={str(self.root)!r})"

    def _entry(self, key: str) -> _Entry:
        return _Entry(self.root / "embeddings" / key[:2] / key)

    def _partial(self, key: str) -> Path:
        return self.root / "partial" / key

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        def note() -> None:
            sys.stderr.write(f"waiting for another process writing cache entry {key[:12]}\n")

        with file_lock(self.root / "locks" / f"{key}.lock", on_wait=note):
            yield

    def _remove_stale_temps(self) -> None:
        """Once per instance, before its first write: delete what killed writers left."""
        if self._cleaned:
            return
        self._cleaned = True
        folders = [self.root / "partial"]
        for sub in ("embeddings", "partial"):
            with contextlib.suppress(OSError):
                folders += [p for p in (self.root / sub).iterdir() if p.is_dir()]
        for folder in folders:
            remove_stale_temps(folder, legacy=True)  # the cache's folders are its own

    # -- reading -------------------------------------------------------------------------

    def get(
        self, fields: Mapping[str, Any], *, num_samples: int | None = None
    ) -> np.ndarray | None:
        """The cached array for ``fields``, or None (absent, or corrupted and now removed).

        ``num_samples`` (or ``fields["num_samples"]``), when given, is the number of rows the
        entry must have.
        """
        rows = None
        if num_samples is not None:
            rows = check_positive_int(num_samples, "num_samples", allow_zero=True)
        key = make_key(fields)
        entry = self._entry(key)
        if not entry.folder.is_dir():
            return None
        try:
            array, _ = self._read(entry, fields, rows)
        except FileNotFoundError:
            array = None  # a writer renamed the entry away while it was read
        if array is not None:
            return array
        with self._locked(key):  # the entry may have been replaced meanwhile: look again
            return self._get_locked(key, fields, rows)

    def _get_locked(
        self, key: str, fields: Mapping[str, Any], rows: int | None
    ) -> np.ndarray | None:
        entry = self._entry(key)
        if not entry.folder.is_dir():
            return None
        try:
            array, problem = self._read(entry, fields, rows)
        except FileNotFoundError:
            return None  # renamed away while read (a writer without file locks replaced it)
        if array is not None:
            return array
        warn_user(f"embedding cache entry {key[:12]} is unusable ({problem}); recomputing it")
        self._discard(entry.folder)
        return None

    def _read(
        self, entry: _Entry, fields: Mapping[str, Any], rows: int | None
    ) -> tuple[np.ndarray | None, str]:
        """(array, "") for a valid entry, else (None, what is wrong with it).

        Raises ``FileNotFoundError`` when a file vanishes while it is read: the entry was
        renamed away by a writer, which is not a defect of the entry.
        """
        try:
            manifest = json.loads(entry.manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if entry.folder.is_dir():
                return None, "the manifest is missing"
            raise
        except (OSError, ValueError) as error:
            return None, f"unreadable manifest: {error}"
        if not isinstance(manifest, dict):
            return None, "its manifest is not a JSON object"
        if manifest.get("fields") != json.loads(_canonical(fields)):
            return None, "its manifest describes other encoder, data or options"
        if rows is None:
            stated = fields.get("num_samples")
            rows = stated if isinstance(stated, int) and not isinstance(stated, bool) else None
        shape = manifest.get("shape")
        if not (isinstance(shape, list) and all(isinstance(n, int) for n in shape)):
            return None, f"its manifest has no valid shape ({shape!r})"
        try:
            dtype = np.dtype(manifest.get("dtype"))
        except (TypeError, ValueError):
            return None, f"its manifest has no valid dtype ({manifest.get('dtype')!r})"
        problem = _shape_problem(tuple(shape), dtype, "its manifest", rows)
        if problem is not None:
            return None, problem
        if not entry.array.is_file():
            return None, "the array file is missing"
        if entry.array.stat().st_size != manifest.get("bytes"):
            return None, "the array file has the wrong size (truncated?)"
        try:
            header_shape, header_dtype = _npy_header(entry.array)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError) as error:
            return None, f"the array file has no valid .npy header ({error})"
        if header_shape != tuple(shape) or header_dtype != dtype:
            return None, (
                f"the array file is {header_dtype} {header_shape} but its manifest says "
                f"{dtype} {tuple(shape)}"
            )
        if sha256_file(entry.array) != manifest.get("sha256"):
            return None, "the array file does not match its checksum"
        try:
            array = _load_npy(entry.array)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError) as error:
            return None, f"the array file cannot be loaded ({error})"
        problem = _shape_problem(array.shape, array.dtype, "the array", rows)
        return (None, problem) if problem is not None else (array, "")

    # -- writing -------------------------------------------------------------------------

    def _discard(self, folder: Path) -> None:
        """Remove an entry folder: renamed out whole first, so no reader sees it half-deleted."""
        trash = folder.with_name(temp_name(folder.name))
        try:
            os.rename(folder, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def put(self, fields: Mapping[str, Any], array: np.ndarray) -> Path:
        """Store ``array``, float32 ``(N, dim)`` and finite, for ``fields`` atomically.

        Replaces an existing entry; returns the entry's folder.
        """
        _check_array(array, "array")
        key = make_key(fields)
        self._remove_stale_temps()
        with self._locked(key):
            return self._store(key, fields, array)

    def _store(self, key: str, fields: Mapping[str, Any], array: np.ndarray) -> Path:
        """Write the entry (the caller holds the key's lock)."""
        entry = self._entry(key)
        staging = make_temp_dir(entry.folder.parent, key)
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
            text = json.dumps(manifest, indent=2, sort_keys=True)
            write_bytes_atomic(staging / "manifest.json", text.encode("utf-8"))
            if entry.folder.exists():
                self._discard(entry.folder)
            _rename_unless_present(staging, entry.folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
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
        array of finite numbers (stored as float32). Finished chunks are stored as they
        complete; after an interruption the next call reuses them (each verified by its
        checksum, dtype and shape) and computes only the rest. A cached entry is served only if
        it holds ``num_samples`` rows. Another process computing the same entry is waited for.
        """
        rows = check_positive_int(num_samples, "num_samples", allow_zero=True)
        chunk_size = check_positive_int(chunk_size, "chunk_size")
        if not callable(encode_range):
            raise TypeError(f"encode_range must be callable, got {type(encode_range).__name__}")
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")
        if not refresh:
            cached = self.get(fields, num_samples=rows)
            if cached is not None:
                if progress is not None:
                    progress(rows, rows)
                return cached
        key = make_key(fields)
        self._remove_stale_temps()
        with self._locked(key):
            if not refresh:  # another process may have stored it while this one waited
                cached = self._get_locked(key, fields, rows)
                if cached is not None:
                    if progress is not None:
                        progress(rows, rows)
                    return cached
            array = self._compute_chunks(key, rows, encode_range, chunk_size, progress, refresh)
            self._store(key, fields, array)
            shutil.rmtree(self._partial(key), ignore_errors=True)
        return array

    def _compute_chunks(
        self,
        key: str,
        num_samples: int,
        encode_range: Callable[[int, int], np.ndarray],
        chunk_size: int,
        progress: Callable[[int, int], None] | None,
        refresh: bool,
    ) -> np.ndarray:
        partial = self._partial(key)
        checksums_file = partial / "chunks.json"
        try:
            checksums = json.loads(checksums_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            checksums = {}
        if not isinstance(checksums, dict):
            checksums = {}
        chunks: list[np.ndarray] = []
        for start in range(0, num_samples, chunk_size):
            stop = min(start + chunk_size, num_samples)
            name = f"chunk_{start:012d}_{stop:012d}.npy"
            path = partial / name
            width = chunks[0].shape[1] if chunks else None
            chunk = None if refresh else _reuse_chunk(path, checksums.get(name), stop - start)
            if chunk is not None and width is not None and chunk.shape[1] != width:
                chunk = None
            if chunk is None:
                chunk = _encoded(encode_range, start, stop, width)
                checksums[name] = _write_npy_atomic(path, chunk)
                write_bytes_atomic(checksums_file, json.dumps(checksums).encode("utf-8"))
            chunks.append(chunk)
            if progress is not None:
                progress(stop, num_samples)
        if chunks:
            return np.concatenate(chunks)
        return _encoded(encode_range, 0, 0, None)

    def clear(self) -> None:
        """Delete every entry, partial result and lock file under the root."""
        for sub in ("embeddings", "partial", "locks"):
            shutil.rmtree(self.root / sub, ignore_errors=True)


def _rename_unless_present(staging: Path, target: Path, attempts: int = 100) -> None:
    """Rename the folder ``staging`` to ``target``, unless a complete ``target`` is there.

    Only writers without the key's lock (a platform without file locks) meet an existing
    ``target``: another writer stored the same bytes first and its entry wins. If it vanishes
    between the failed rename and the check (yet another writer replacing it), try again.
    """
    for _ in range(attempts):
        try:
            os.rename(staging, target)
            return
        except OSError:
            if target.is_dir():
                return
    raise OSError(f"could not store the cache entry {target}: it keeps being replaced")


def _check_array(array: object, name: str) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
    problem = _shape_problem(array.shape, array.dtype, name, None)
    if problem is not None:
        raise ValueError(problem)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds non-finite values (NaN or Inf)")


def _reuse_chunk(path: Path, checksum: object, rows: int) -> np.ndarray | None:
    """A finished chunk, if its file matches its recorded checksum, dtype and row count."""
    if not isinstance(checksum, str) or not path.is_file():
        return None
    try:
        if sha256_file(path) != checksum:
            return None
        chunk = _load_npy(path)
    except (OSError, ValueError, EOFError):
        return None
    return chunk if _shape_problem(chunk.shape, chunk.dtype, "", rows) is None else None


def _encoded(
    encode_range: Callable[[int, int], np.ndarray], start: int, stop: int, width: int | None
) -> np.ndarray:
    """``encode_range(start, stop)`` as float32, checked: ``(stop - start, width)``, finite."""
    chunk = np.asarray(encode_range(start, stop))
    expected = f"({stop - start}, {'dim' if width is None else width})"
    if chunk.ndim != 2 or chunk.shape[0] != stop - start:
        raise ValueError(
            f"the encoder returned shape {chunk.shape} for samples {start}:{stop}; "
            f"expected {expected}"
        )
    if width is not None and chunk.shape[1] != width:
        raise ValueError(
            f"the encoder returned width {chunk.shape[1]} for samples {start}:{stop} but "
            f"{width} for the samples before; expected {expected}"
        )
    if chunk.dtype.kind not in "fiub":
        raise TypeError(
            f"the encoder returned dtype {chunk.dtype} for samples {start}:{stop}; expected "
            "real numbers"
        )
    with np.errstate(over="ignore"):  # an overflow to inf is reported just below
        chunk = chunk.astype(np.float32, copy=False)
    if not np.isfinite(chunk).all():
        bad = int(np.flatnonzero(~np.isfinite(chunk).all(axis=1))[0]) + start
        raise ValueError(
            f"the encoder returned non-finite values (NaN or Inf, possibly a float32 "
            f"overflow) for samples {start}:{stop}, first at sample {bad}"
        )
    return chunk
