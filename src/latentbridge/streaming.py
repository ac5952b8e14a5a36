"""Streaming projection of embedding files too large for memory: :func:`project_file`.

The latents ``(N, D)`` are read from a memory-mapped ``.npy`` file chunk by chunk and their
relative representation is written chunk by chunk into a memory-mapped ``.npy`` file, so the
memory used is that of one chunk (plus the anchors), whatever ``N``. The values are those of
the in-memory modules, computed with them:

- one projection: ``RelativeProjection(p, normalization, relative_normalization).fit(anchors)(x)``,
  ``(N, K)``;
- several: ``ProductProjection(ps, ...).fit(anchors).relative(x)`` with its ``(N, S, K)``
  subspaces side by side, ``(N, S * K)``: columns ``s * K : (s + 1) * K`` hold subspace ``s``,
  in the order given.

Files next to the output ``OUT`` while it is written (deleted once it is complete)::

    OUT.partial        the .npy being filled, renamed to OUT when every row is written
    OUT.partial.json   the job's fingerprint and the number of finished rows
    OUT.partial.lock   held by the writing process (a second writer of OUT is refused)

An existing ``OUT`` is refused unless ``overwrite=True`` (``--overwrite``), and then replaced
only once the new one is complete. A second process writing the same ``OUT`` is refused at once
(the lock file is held with ``flock``, which the kernel releases when its holder dies).

After every chunk the partial file is flushed to disk, then the sidecar is replaced atomically,
so the rows it counts are always on disk. A run that is killed (``kill -9``, a lost node, Ctrl-C)
leaves the partial file behind, never a half-written ``OUT``; running the same job again
continues from the finished rows. The job is fingerprinted by the input file (resolved path,
size, modification time, header shape and dtype), the anchors (SHA-256 of their values, or of
the indices), the projections, normalisations, output dtype and chunk size: a partial file of
any other job is discarded and the projection restarts. A run that fails on its input (a NaN in
row 123456, a value that does not fit the output dtype) deletes its partial file, since the same
job would fail again.

Memory: a chunk is read from the input's map, projected, written to the output's map, flushed,
and its pages are then dropped from the process's resident set (``madvise(MADV_DONTNEED)``;
they stay in the page cache), so neither the anonymous nor the file-backed resident memory
grows with ``N``. The anchors selected by index are read with plain reads, not through the map.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import mmap
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import normalization as _norm
from . import projections as _projections
from ._files import remove_stale_temps, write_bytes_atomic
from ._progress import progress_bar
from ._validation import check_bool, check_choice, check_positive_int, warn_user
from .cache import fingerprint_inputs
from .io import _existing, _read_npy, load_embeddings, npy_header
from .modules import ProductProjection, RelativeProjection

__all__ = [
    "DEFAULT_CHUNK_MEMORY",
    "OUTPUT_DTYPES",
    "default_chunk_size",
    "partial_paths",
    "project_file",
]

#: Working memory (bytes) that the default chunk size aims one chunk's computation at: 64 MiB.
DEFAULT_CHUNK_MEMORY = 64 << 20

#: The dtypes the relative representation can be written in.
OUTPUT_DTYPES = ("float16", "float32", "float64")

#: Version of the sidecar's layout; a sidecar of another version is not resumed.
FORMAT_VERSION = 1

_PathLike = str | os.PathLike[str]


def default_chunk_size(
    num_features: int,
    num_anchors: int,
    num_projections: int = 1,
    *,
    itemsize: int = 4,
    out_itemsize: int = 4,
    memory: int = DEFAULT_CHUNK_MEMORY,
) -> int:
    """The number of rows whose projection uses about ``memory`` bytes of working memory.

    A row costs its input and the normalised copies the projections make (about ``4 D`` values
    in the compute dtype of ``itemsize`` bytes), the relative subspaces with their stacked and
    normalised copies (about ``3 S K`` values) and the row written (``S K`` values of
    ``out_itemsize`` bytes). At least 1.
    """
    num_features = check_positive_int(num_features, "num_features")
    num_anchors = check_positive_int(num_anchors, "num_anchors")
    num_projections = check_positive_int(num_projections, "num_projections")
    memory = check_positive_int(memory, "memory")
    width = num_projections * num_anchors
    per_row = itemsize * (4 * num_features + 3 * width) + out_itemsize * width
    return max(1, memory // per_row)


def partial_paths(out: _PathLike) -> tuple[Path, Path, Path]:
    """``(partial, sidecar, lock)``: the files next to ``out`` while it is being written."""
    target = Path(out)
    return (
        target.with_name(target.name + ".partial"),
        target.with_name(target.name + ".partial.json"),
        target.with_name(target.name + ".partial.lock"),
    )


# -- inputs -----------------------------------------------------------------------------------


def _open_latents(path: _PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """The latents memory-mapped read-only, and the fingerprint of the file."""
    if Path(path).suffix.lower() != ".npy":
        raise ValueError(f"latents must be a .npy file (it is memory-mapped), got {str(path)!r}")
    file = _existing(path, "latents file")
    shape, fortran_order, dtype, offset = npy_header(file, "latents")
    if len(shape) != 2:
        raise ValueError(f"latents {str(file)!r} must hold a 2-D (N, D) array, got shape {shape}")
    if dtype.kind != "f" or dtype.itemsize > 8:
        raise ValueError(
            f"latents {str(file)!r} must hold float16, float32 or float64 values, got {dtype}"
        )
    if shape[1] == 0:
        raise ValueError(f"latents {str(file)!r} must have at least one feature, got {shape}")
    stat = file.stat()
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"latents {str(file)!r} cannot be memory-mapped: {error}") from None
    fingerprint = {
        "path": str(file.resolve()),
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "shape": list(shape),
        "dtype": dtype.str,
        "fortran_order": fortran_order,
        "offset": offset,
    }
    return array, fingerprint


def _first_bad(block: np.ndarray) -> tuple[int, int, int]:
    """(count, row, column) of the non-finite values of a 2-D block."""
    bad = ~np.isfinite(block)
    row, col = (int(i) for i in np.argwhere(bad)[0])
    return int(bad.sum()), row, col


def _as_array(value: object, argument: str) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    raise TypeError(
        f"{argument} must be a path to a .npy file, a numpy array or a tensor, got "
        f"{type(value).__name__}"
    )


def _anchors_from_file_or_array(value: object, latents_file: str, dim: int) -> np.ndarray:
    if isinstance(value, (str, os.PathLike)):
        _existing(value, "anchors file")
        anchors = load_embeddings(value)
        where = f"anchors {str(value)!r}"
    else:
        anchors = _as_array(value, "anchors")
        where = "anchors"
        if anchors.ndim != 2:
            raise ValueError(f"anchors must be a 2-D (K, D) array, got shape {anchors.shape}")
        if anchors.dtype.kind != "f":
            raise ValueError(f"anchors must hold floating-point values, got {anchors.dtype}")
    if anchors.shape[0] == 0:
        raise ValueError(f"{where} must hold at least one anchor, got shape {anchors.shape}")
    if anchors.shape[1] != dim:
        raise ValueError(
            f"{where} must have the latents' D={dim} features (of {latents_file!r}), got shape "
            f"{anchors.shape}"
        )
    if not np.isfinite(anchors).all():
        count, row, col = _first_bad(anchors)
        raise ValueError(
            f"{where} holds {count} NaN or infinite value(s), the first at row {row}, column {col}"
        )
    return anchors


def _anchor_indices(value: object, num_rows: int) -> np.ndarray:
    if isinstance(value, (str, os.PathLike)):
        if Path(value).suffix.lower() != ".npy":
            raise ValueError(f"anchor_indices must be a .npy file, got {str(value)!r}")
        indices = _read_npy(_existing(value, "anchor indices file"))
        where = f"anchor_indices {str(value)!r}"
    else:
        indices = _as_array(value, "anchor_indices")
        where = "anchor_indices"
    if indices.ndim != 1:
        raise ValueError(f"{where} must be a 1-D (K,) array, got shape {indices.shape}")
    if indices.shape[0] == 0:
        raise ValueError(f"{where} must hold at least one index, got none")
    if indices.dtype.kind not in "iu":
        raise ValueError(f"{where} must hold integer row indices, got dtype {indices.dtype}")
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= num_rows:
        raise ValueError(
            f"{where} must index rows in [0, {num_rows}) of the latents, got values in "
            f"[{low}, {high}]"
        )
    repeated = indices.shape[0] - np.unique(indices).shape[0]
    if repeated:
        raise ValueError(f"{where} must not repeat an index, got {repeated} repeated")
    return indices.astype(np.int64)


def _gather_rows(latents: np.ndarray, file: Path, offset: int, indices: np.ndarray) -> np.ndarray:
    """``latents[indices]`` read with plain reads of the file rather than through its map.

    A fault in a memory map maps the whole page-cache folio around it (up to megabytes), so
    K rows spread over a large file would map most of it into the resident set.
    """
    if not latents.flags.c_contiguous or latents.shape[0] == 0:
        return np.ascontiguousarray(latents[indices])
    row_bytes = latents.shape[1] * latents.dtype.itemsize
    rows = np.empty((indices.shape[0], latents.shape[1]), dtype=latents.dtype)
    with file.open("rb", buffering=0) as handle:
        for i, index in enumerate(indices):
            handle.seek(offset + int(index) * row_bytes)
            if handle.readinto(memoryview(rows[i]).cast("B")) != row_bytes:
                raise ValueError(f"latents {str(file)!r} changed while it was read")
    return rows


def _anchors_from_indices(
    latents: np.ndarray, file: Path, offset: int, indices: np.ndarray
) -> np.ndarray:
    anchors = _gather_rows(latents, file, offset, indices)
    where = f"latents {str(file)!r}"
    if not np.isfinite(anchors).all():
        count, row, col = _first_bad(anchors)
        raise ValueError(
            f"the anchors selected by anchor_indices hold {count} NaN or infinite value(s), the "
            f"first at row {int(indices[row])} of {where}, column {col}"
        )
    return anchors


def _projection_names(projections: object) -> tuple[str, ...]:
    names = (projections,) if isinstance(projections, str) else projections
    if not isinstance(names, Sequence) or isinstance(names, bytes):
        raise TypeError(
            f"projections must be a projection name or a sequence of names, got "
            f"{type(projections).__name__}"
        )
    if len(names) == 0:
        raise ValueError("projections must name at least one projection, got none")
    for name in names:
        _projections.get(name)  # ValueError listing the available ones
    return tuple(names)


# -- the partial output and its lock ---------------------------------------------------------


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def _exclusive(lock: Path, out: Path) -> Iterator[None]:
    """Hold ``lock`` (created, and deleted when released) or refuse at once.

    The file is deleted while still held, so a process that opened it before and locks it
    after finds it no longer at its path and tries again with the new one.
    """
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise RuntimeError(
                f"another process is writing {str(out)!r} (it holds {str(lock)!r}); wait for it "
                "to finish, or stop it and run again to resume"
            )
        try:
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            break
        _unlock(fd)
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # fails on Windows while open: done again below
        _unlock(fd)
        os.close(fd)
        if os.name == "nt":
            with contextlib.suppress(OSError):
                os.unlink(lock)


def _release_pages(array: np.ndarray, start: int, stop: int) -> None:
    """Best effort: drop rows ``start:stop`` of a memory-mapped ``array`` from this process's
    resident memory (``madvise(MADV_DONTNEED)``; they stay in the page cache and on disk), so
    that reading or writing a file larger than memory does not grow the resident set."""
    handle = getattr(array, "_mmap", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if handle is None or advice is None or not array.flags.c_contiguous or stop <= start:
        return
    row = array.strides[0]
    # np.memmap maps from the allocation-granularity boundary below the array's offset
    base = int(getattr(array, "offset", 0)) % mmap.ALLOCATIONGRANULARITY
    begin, end = base + start * row, base + stop * row
    begin -= begin % mmap.PAGESIZE
    with contextlib.suppress(OSError, ValueError):
        handle.madvise(advice, begin, end - begin)


def _read_sidecar(sidecar: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _write_sidecar(sidecar: Path, job: dict[str, Any], rows_done: int) -> None:
    state = {"format": FORMAT_VERSION, "job": job, "rows_done": rows_done}
    text = json.dumps(state, indent=2, sort_keys=True)
    write_bytes_atomic(sidecar, text.encode("utf-8"))


def _resumable(
    partial: Path, sidecar: Path, job: dict[str, Any], shape: tuple[int, int], dtype: np.dtype[Any]
) -> tuple[np.memmap[Any, Any] | None, int]:
    """The partial output opened for writing and its finished rows, or ``(None, 0)`` after
    deleting whatever is there (another job's files, or files that do not check out)."""
    state = _read_sidecar(sidecar)
    if state is not None and partial.is_file():
        done = state.get("rows_done")
        if (
            state.get("format") == FORMAT_VERSION
            and state.get("job") == job
            and isinstance(done, int)
            and not isinstance(done, bool)
            and 0 <= done <= shape[0]
        ):
            try:
                header_shape, fortran_order, header_dtype, offset = npy_header(partial, "partial")
                if (
                    header_shape == shape
                    and header_dtype == dtype
                    and not fortran_order
                    and partial.stat().st_size == offset + math.prod(shape) * dtype.itemsize
                ):
                    return np.lib.format.open_memmap(partial, mode="r+"), done
            except (OSError, ValueError):
                pass
        elif state.get("job") != job:
            warn_user(
                f"discarding the unfinished output {str(partial)!r} of a different job (other "
                "input, anchors or options); starting again"
            )
    for path in (partial, sidecar):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return None, 0


def _create_partial(
    partial: Path, dtype: np.dtype[Any], shape: tuple[int, int]
) -> np.memmap[Any, Any]:
    """A new ``.npy`` file of ``shape`` memory-mapped for writing, its blocks allocated.

    A write through a memory map into a sparse file on a full disk kills the process
    (``SIGBUS``); allocating the blocks first (where the system can) turns that into an
    ``OSError`` here, before any work is lost.
    """
    result = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape)
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is not None:
        try:
            with partial.open("r+b") as handle:
                try:
                    allocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
                except OSError as error:
                    if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                        raise
        except OSError:
            del result
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
    return result


def _project_chunk(module: RelativeProjection | ProductProjection, x: np.ndarray) -> Tensor:
    """The relative representation ``(n, S * K)`` of one chunk (the in-memory modules')."""
    with torch.no_grad():
        if isinstance(module, ProductProjection):
            relative = module.relative(x)
            return relative.reshape(relative.shape[0], -1)
        return module(x)


def _check_output(out: Path, inputs: Sequence[Path], overwrite: bool) -> None:
    if out.suffix.lower() != ".npy":
        raise ValueError(f"out must end with .npy, got {str(out)!r}")
    if out.is_dir():
        raise ValueError(f"out {str(out)!r} is a folder, not a file")
    for path in inputs:
        if out.resolve() == path.resolve() or (out.exists() and os.path.samefile(out, path)):
            raise ValueError(f"out {str(out)!r} is one of the input files; write elsewhere")
    if out.exists() and not overwrite:
        raise FileExistsError(f"out {str(out)!r} exists; pass overwrite=True to replace it")


# -- the entry point ------------------------------------------------------------------------


def project_file(
    latents: _PathLike,
    out: _PathLike,
    *,
    anchors: _PathLike | np.ndarray | Tensor | None = None,
    anchor_indices: _PathLike | np.ndarray | Tensor | Sequence[int] | None = None,
    projections: str | Sequence[str] = ("cosine",),
    normalization: str = "none",
    relative_normalization: str = "none",
    dtype: str = "float32",
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the relative representation of the latents in a ``.npy`` file to ``out``, in chunks.

    Memory stays that of one chunk: the latents are memory-mapped and read ``chunk_size`` rows
    at a time, and each chunk's result is written into a memory-mapped ``out.partial`` file,
    renamed to ``out`` once complete (see the module docstring for the files and for
    resuming). An interrupted or killed run resumes from its finished rows when run again with
    the same arguments; the result is the same, byte for byte, as an uninterrupted run's.

    Args:
        latents: a ``.npy`` file of shape ``(N, D)``, float16, float32 or float64. Float64 is
            computed in float64, the others in float32 (as the modules compute them).
        out: the ``.npy`` file to write, ``(N, S * K)`` (missing folders are created).
        anchors: the anchors' latents in the same space, ``(K, D)``: a ``.npy`` (or
            ``.safetensors``) file, a numpy array or a tensor.
        anchor_indices: instead of ``anchors``, ``K`` distinct row indices into the latents
            (a 1-D integer ``.npy`` file, array or sequence); the anchors are those rows.
        projections: a registered projection name, or several: their subspaces are written
            side by side, ``out[:, s * K:(s + 1) * K]`` for ``projections[s]``.
        normalization: absolute normalisation fitted on the anchors (``none``, ``center``,
            ``standard``, ``l2``, ``whiten``).
        relative_normalization: ``none``, ``l2`` or ``standardize``, of each subspace.
        dtype: the dtype written: ``float16``, ``float32`` (default) or ``float64``.
        chunk_size: rows per chunk; default :func:`default_chunk_size`, about 64 MiB of working
            memory. Part of the job's fingerprint: a partial file written with another chunk
            size is not resumed.
        overwrite: replace an existing ``out`` (atomically, once the new one is complete);
            without it an existing ``out`` is refused before any work, and left untouched.
        progress: draw a progress bar over the rows on standard error (needs ``tqdm``).

    Returns:
        The path of the written file.

    Raises:
        FileNotFoundError: a missing input file.
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        ValueError: an invalid input file (not ``.npy``, unreadable header, not 2-D, not
            floating point, a NaN or infinite value, named with its row), anchors or indices
            (wrong shape or D, indices out of range, repeated or not integers), unknown names,
            or results that do not fit ``dtype`` (e.g. distances above 65504 in float16). The
            partial file of a run that fails this way is deleted: ``out`` is never written.
        RuntimeError: another process is writing ``out``.

    Repeated anchor *rows* (distinct indices of identical latents) are accepted with a warning,
    as by :class:`latentbridge.RelativeProjection`.
    """
    names = _projection_names(projections)
    _norm.get_absolute(normalization)
    _norm.get_relative(relative_normalization)
    check_choice(dtype, "dtype", OUTPUT_DTYPES)
    if chunk_size is not None:
        chunk_size = check_positive_int(chunk_size, "chunk_size")
    overwrite = check_bool(overwrite, "overwrite")
    progress = check_bool(progress, "progress")
    if (anchors is None) == (anchor_indices is None):
        raise ValueError("give exactly one of anchors and anchor_indices")

    array, latents_fp = _open_latents(latents)
    num_rows, dim = array.shape
    latents_file = latents_fp["path"]
    inputs = [Path(latents_file)]
    if anchor_indices is not None:
        indices = _anchor_indices(anchor_indices, num_rows)
        anchor_values = _anchors_from_indices(
            array, Path(latents_file), latents_fp["offset"], indices
        )
        anchors_fp = {"indices": fingerprint_inputs(indices)}
    else:
        if isinstance(anchors, (str, os.PathLike)):
            inputs.append(Path(anchors))
        anchor_values = _anchors_from_file_or_array(anchors, latents_file, dim)
        anchors_fp = {"values": fingerprint_inputs(np.ascontiguousarray(anchor_values))}
    target = Path(out)
    _check_output(target, inputs, overwrite)

    # float64 latents compute in float64, the others in float32 (the anchors too)
    compute = np.dtype(np.float64 if array.dtype == np.float64 else np.float32)
    anchor_values = np.asarray(anchor_values, dtype=compute)
    module: RelativeProjection | ProductProjection
    if len(names) == 1:
        module = RelativeProjection(names[0], normalization, relative_normalization)
        module.fit(anchor_values)
    else:
        module = ProductProjection(
            names,
            "concat",
            anchors=anchor_values,
            normalization=normalization,
            relative_normalization=relative_normalization,
        )
    num_anchors = int(anchor_values.shape[0])
    width = len(names) * num_anchors
    out_dtype = np.dtype(dtype)
    if chunk_size is None:
        chunk_size = default_chunk_size(
            dim,
            num_anchors,
            len(names),
            itemsize=compute.itemsize,
            out_itemsize=out_dtype.itemsize,
        )
    from . import __version__

    job = {
        "latentbridge": __version__,
        # the arithmetic: another torch or kernel (numba or torch.cdist) rounds differently
        "torch": torch.__version__,
        "kernels": _kernel_backend(compute),
        "latents": latents_fp,
        "anchors": anchors_fp,
        "projections": list(names),
        "normalization": normalization,
        "relative_normalization": relative_normalization,
        "dtype": out_dtype.name,
        "chunk_size": chunk_size,
    }
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)  # e.g. a sidecar's temporary left by a killed run
    lock = partial_paths(target)[2]
    try:
        with _exclusive(lock, target):
            _run(
                array,
                module,
                job,
                target,
                (num_rows, width),
                compute,
                out_dtype,
                chunk_size,
                overwrite=overwrite,
                progress=progress,
            )
    except (ValueError, TypeError, RuntimeError):
        for folder in created:  # the folders made for out, if still empty: nothing is left
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return target


def _kernel_backend(compute: np.dtype[Any]) -> str:
    """Which distance kernels compute in ``compute``: ``numba <version>`` or ``torch``."""
    from . import _kernels

    probe = torch.empty(0, dtype=torch.float64 if compute == np.float64 else torch.float32)
    if not _kernels.use_numba(probe):
        return "torch"
    import numba

    return f"numba {numba.__version__}"


class _InputError(ValueError):
    """A failure that the same job would meet again (a NaN in the latents, a value that does
    not fit the output dtype): its partial file is deleted."""


def _run(
    array: np.ndarray,
    module: RelativeProjection | ProductProjection,
    job: dict[str, Any],
    target: Path,
    shape: tuple[int, int],
    compute: np.dtype[Any],
    out_dtype: np.dtype[Any],
    chunk_size: int,
    *,
    overwrite: bool,
    progress: bool,
) -> None:
    """Fill (or resume) the partial output and rename it to ``target`` (the lock is held)."""
    partial, sidecar, _ = partial_paths(target)
    latents_file = job["latents"]["path"]
    num_rows = shape[0]
    result: np.memmap[Any, Any] | None
    result, done = _resumable(partial, sidecar, job, shape, out_dtype)
    bar = progress_bar(num_rows, f"project {target.name}", enabled=progress, unit="row")
    try:
        with bar:
            bar.update(done)
            for start in range(done, num_rows, chunk_size):
                stop = min(start + chunk_size, num_rows)
                block = np.ascontiguousarray(array[start:stop], dtype=compute)
                if not np.isfinite(block).all():
                    count, row, col = _first_bad(block)
                    raise _InputError(
                        f"latents {latents_file!r} holds NaN or infinite values ({count} in rows "
                        f"{start}-{stop - 1}), the first at row {start + row}, column {col}; "
                        "remove or impute them"
                    )
                try:
                    values = _project_chunk(module, block).numpy()
                except ValueError as error:  # e.g. values that do not fit the dtype
                    raise _InputError(*error.args) from None
                if result is None:  # created once the first chunk has succeeded
                    result = _create_partial(partial, out_dtype, shape)
                with np.errstate(over="ignore", invalid="ignore"):
                    result[start:stop] = values
                if not np.isfinite(result[start:stop]).all():
                    raise _InputError(
                        f"the relative representation of rows {start}-{stop - 1} has values that "
                        f"do not fit {out_dtype.name} (largest finite "
                        f"{float(np.finfo(out_dtype).max):.4g}); write a wider --dtype/dtype"
                    )
                result.flush()  # the rows are on disk before the sidecar counts them
                _write_sidecar(sidecar, job, stop)
                _release_pages(array, start, stop)
                _release_pages(result, start, stop)
                bar.update(stop - start)
        if result is None:  # nothing left to compute (N = 0)
            result = _create_partial(partial, out_dtype, shape)
        result.flush()
        result = None  # closes the map (Windows cannot rename an open file)
        if target.exists() and not overwrite:
            raise FileExistsError(
                f"out {str(target)!r} appeared while it was computed; its rows are kept in "
                f"{str(partial)!r}: pass overwrite=True to replace it"
            )
        os.replace(partial, target)
    except _InputError:
        # A failure on the input: the same job would fail again, so nothing is kept (any other
        # failure, e.g. out of memory or a full disk, keeps the finished rows for a rerun).
        result = None
        for path in (partial, sidecar):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    with contextlib.suppress(FileNotFoundError):
        sidecar.unlink()
