"""Atomic file writes, writer-tagged temporary files, their cleanup, file locks and checksums.

Everything that persists results (run folders, the embedding cache, downloads) writes a
temporary file or folder next to its target and renames it into place, so a reader sees the
old version or the complete new one, never a half-written one.

Temporary names carry their writer::

    .<name>.lb-<host>-<pid>.<random>.tmp

``<host>`` is the first 12 hex digits of the SHA-256 of this machine's host name and, where the
system has them, of the process-id namespace (Linux ``/proc/self/ns/pid``: two containers that
share a host name do not share process ids), and ``<pid>`` the writing process's id. A writer
killed mid-write (``kill -9``, a lost node) leaves its temporary behind;
:func:`remove_stale_temps` deletes those, and only those, that are *stale*:

* a tagged temporary of **this host** whose process is **no longer running** (on Windows,
  where there is no harmless probe of a process id, this test is skipped), or
* a tagged temporary **older than** :data:`STALE_AGE_S` (24 hours, by modification time), and,
  only in folders that the library owns entirely (``legacy=True``: the embedding cache), a
  temporary named by an older version (``.*.tmp``, ``.*.part``, a cache staging folder
  ``.<key[:12]>.<random>``) older than that. Elsewhere (run folders, download folders, which a
  user may share with files of their own) an untagged name is never touched.

So the temporary of a writer that is still running -- another process sharing the cache or the
run folder, on this machine or another one mounting the same file system -- is never deleted:
it is tagged with a live process (this host) or it is recent (any host). A process id reused
after a crash only delays the cleanup until the age rule applies.

:func:`file_lock` serialises writers of one key across processes: ``fcntl.flock`` on POSIX,
``msvcrt.locking`` on Windows; the kernel drops the lock when its holder dies.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "STALE_AGE_S",
    "atomic_write",
    "file_lock",
    "is_stale_temp",
    "make_temp_dir",
    "remove_stale_temps",
    "sha256_file",
    "temp_name",
    "write_bytes_atomic",
]

#: Age (seconds since the last modification) beyond which any temporary is stale.
STALE_AGE_S = 24 * 3600.0

# The part of a target's name kept in its temporary's name (file names are limited to 255 bytes).
_NAME_CHARS = 80
_TAGGED = re.compile(r"^\..*\.lb-(?P<host>[0-9a-f]{12})-(?P<pid>[0-9]+)\.[A-Za-z0-9_]+\.tmp$")
# Older versions' names: .NAME.XXXXXXXX.tmp / .part files, .KEY12.XXXXXXXX cache folders.
_LEGACY = re.compile(r"^\..+\.(tmp|part)$|^\.[0-9a-f]{12}\.[a-z0-9_]{8}$")


@functools.cache
def _host_tag() -> str:
    """This host (and process-id namespace), hashed: the scope in which a pid identifies."""
    host = socket.gethostname()
    with contextlib.suppress(OSError):
        host += "\0" + os.readlink("/proc/self/ns/pid")
    return hashlib.sha256(host.encode("utf-8", "replace")).hexdigest()[:12]


def _prefix(name: str) -> str:
    return f".{name[:_NAME_CHARS]}.lb-{_host_tag()}-{os.getpid()}."


def temp_name(name: str) -> str:
    """A fresh, writer-tagged temporary name for ``name`` (nothing is created)."""
    return f"{_prefix(name)}{secrets.token_hex(4)}.tmp"


def make_temp_dir(parent: Path, name: str) -> Path:
    """Create a writer-tagged temporary folder for ``name`` in ``parent`` (created if needed)."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=_prefix(name), suffix=".tmp"))


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, then rename it into place.

    Readers see the old file or the complete new one, never a half-written one; on failure the
    temporary file is removed and ``path`` is untouched. The temporary is writer-tagged (see
    the module docstring), so one left by a killed process is found by
    :func:`remove_stale_temps`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_prefix(path.name), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""

    def write(handle: BinaryIO) -> None:
        handle.write(data)

    return atomic_write(path, write)


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- stale temporaries -----------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False  # never a writer's id; os.kill(0, ...) would signal our process group
    if pid == os.getpid() or os.name == "nt":
        return True  # on Windows os.kill(pid, 0) would terminate the process
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:  # PermissionError: it exists, owned by another user
        return True
    return True


def is_stale_temp(
    path: Path,
    *,
    max_age_s: float = STALE_AGE_S,
    now: float | None = None,
    legacy: bool = False,
) -> bool:
    """Whether ``path`` is a temporary left by a writer that is gone (the module's rule).

    ``legacy`` also counts the untagged names of older versions (only for folders that the
    library owns entirely).
    """
    name = path.name
    tagged = _TAGGED.match(name)
    if tagged is None and not (legacy and _LEGACY.match(name) is not None):
        return False
    try:
        mtime = path.lstat().st_mtime
    except OSError:
        return False
    if (time.time() if now is None else now) - mtime > max_age_s:
        return True
    return (
        tagged is not None and tagged["host"] == _host_tag() and not _pid_alive(int(tagged["pid"]))
    )


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False  # another cleaner was first
    except OSError:
        return False  # not ours to remove (permissions): left for its owner
    return True


def remove_stale_temps(
    folder: str | os.PathLike[str],
    *,
    recursive: bool = False,
    max_age_s: float = STALE_AGE_S,
    legacy: bool = False,
) -> list[Path]:
    """Delete the stale temporary files and folders in ``folder``; returns what was removed.

    ``recursive`` also searches the sub-folders (symbolic links are never followed, and a
    removed temporary folder is not searched). Finished files, other names and the temporaries
    of writers still running are left alone (see the module docstring for the rule, and for
    ``legacy``). A missing ``folder`` is not an error.
    """
    root = Path(folder)
    removed: list[Path] = []
    now = time.time()
    pending = [root]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:  # missing, not a folder, or unreadable
            continue
        for entry in entries:
            path = Path(entry.path)
            if is_stale_temp(path, max_age_s=max_age_s, now=now, legacy=legacy):
                if _remove(path):
                    removed.append(path)
            elif recursive and entry.is_dir(follow_symlinks=False):
                pending.append(path)
    return sorted(removed)


# -- locks -----------------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` (created if missing) for the block.

    ``on_wait()`` is called once if another process holds the lock and this one has to wait.
    The lock file is left in place: deleting it would let two processes lock two different
    files of the same name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, on_wait)
        try:
            yield
        finally:
            _release(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":
    import msvcrt

    def _acquire(fd: int, on_wait: Callable[[], None] | None) -> None:
        waited = False
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                time.sleep(0.05)

    def _release(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _acquire(fd: int, on_wait: Callable[[], None] | None) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)

    def _release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
