"""Temporary files of killed writers are removed, those of running writers never.

The rule (``latentbridge._files``): a writer-tagged temporary of this host whose process is
gone, or any temporary older than 24 hours, is stale. Killed writers are real processes killed
with SIGKILL in the middle of a write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from latentbridge import _files
from latentbridge._files import STALE_AGE_S, remove_stale_temps, temp_name
from latentbridge.cache import EmbeddingCache, make_key
from latentbridge.experiments.report import write_report
from latentbridge.experiments.results import CellStore, ResultRow, csv_text

FILES_MODULE = Path(_files.__file__)
needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL here")


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def tagged(folder: Path, name: str, pid: int, host: str | None = None) -> Path:
    """A temporary named as writer ``pid`` on ``host`` (default: this one) would name it."""
    host = host or _files._host_tag()
    path = folder / f".{name}.lb-{host}-{pid}.abcd1234.tmp"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half written")
    return path


def age(path: Path, seconds: float) -> Path:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp), follow_symlinks=False)
    return path


def test_the_stale_rule(tmp_path: Path) -> None:
    dead, live = dead_pid(), os.getpid()
    other_host = "0123456789ab" if _files._host_tag() != "0123456789ab" else "ba9876543210"
    stale = [
        tagged(tmp_path, "a.csv", dead),  # killed writer of this host
        age(tagged(tmp_path, "b.csv", live), STALE_AGE_S + 60),  # older than a day
        age(tagged(tmp_path, "c.csv", dead, other_host), STALE_AGE_S + 60),
    ]
    # Older versions' untagged names: removed only where the library owns the folder.
    legacy = [
        age(_write(tmp_path / ".d.csv.k3j4h5g6.tmp"), STALE_AGE_S + 60),
        age(_write(tmp_path / ".e.gz.abcdefgh.part"), STALE_AGE_S + 60),
    ]
    kept = [
        tagged(tmp_path, "f.csv", live),  # this process: still writing
        tagged(tmp_path, "g.csv", dead, other_host),  # another host: recent, maybe running
        _write(tmp_path / ".h.csv.k3j4h5g6.tmp"),  # an older version's, recent
        age(_write(tmp_path / "results.csv"), STALE_AGE_S + 60),  # finished files, any age
        age(_write(tmp_path / ".gitignore"), STALE_AGE_S + 60),
        age(_write(tmp_path / "notes.tmp"), STALE_AGE_S + 60),  # not a hidden temporary
    ]
    assert remove_stale_temps(tmp_path) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept + legacy)
    assert remove_stale_temps(tmp_path, legacy=True) == sorted(legacy)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_a_user_folder_keeps_its_own_dotfiles(tmp_path: Path) -> None:
    """Pointing a run or a report at a folder of the user's never deletes the user's files."""
    from latentbridge.experiments.report import write_report
    from latentbridge.experiments.results import CellStore

    own = [
        age(_write(tmp_path / ".draft.tmp", b"precious"), 3 * STALE_AGE_S),
        age(_write(tmp_path / "projects" / ".video.part", b"precious"), 3 * STALE_AGE_S),
        age(_write(tmp_path / "cells" / ".notes.abcdefgh.tmp", b"precious"), 3 * STALE_AGE_S),
    ]
    deep = tagged(tmp_path / "projects" / "sub", "x.csv", dead_pid())  # not a run sub-folder
    with pytest.raises(ValueError, match="not a run folder"):
        write_report(tmp_path)
    CellStore(tmp_path)
    assert all(p.read_bytes() == b"precious" for p in own)
    assert deep.exists()


def _write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_links_and_recursion(tmp_path: Path) -> None:
    dead = dead_pid()
    staging = tagged(tmp_path, "key", dead)
    staging.unlink()
    staging.mkdir()
    _write(staging / "embeddings.npy")
    deep = tagged(tmp_path / "cells" / "sub", "x.csv", dead)
    target = _write(tmp_path / "precious.csv", b"finished")
    link = tmp_path / f".link.lb-{_files._host_tag()}-{dead}.abcd1234.tmp"
    try:
        link.symlink_to(target)
    except (OSError, NotImplementedError):
        link = None  # Windows without the symlink privilege
    assert deep.exists() and remove_stale_temps(tmp_path) == sorted(
        p for p in (staging, link) if p is not None
    )
    assert deep.exists()  # not recursive
    assert remove_stale_temps(tmp_path, recursive=True) == [deep]
    assert target.read_bytes() == b"finished"  # a removed link's target is untouched
    assert remove_stale_temps(tmp_path / "missing") == []


def test_temporary_names_are_tagged_and_bounded() -> None:
    name = temp_name("x" * 250 + ".csv")
    assert len(name) < 255 and name.endswith(".tmp")
    assert _files._TAGGED.match(name)["pid"] == str(os.getpid())  # type: ignore[index]


KILLED_WRITER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("files", sys.argv[1])
files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(files)
from pathlib import Path

def write(handle):
    handle.write(b"half of a cell")
    handle.flush()
    print("writing", flush=True)
    time.sleep(60)

files.atomic_write(Path(sys.argv[2]), write)
"""


def killed_mid_write(target: Path) -> Path:
    """Run a real writer of ``target``, SIGKILL it mid-write; returns the temporary it left."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(FILES_MODULE), str(target)],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"writing\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (left,) = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    assert left.read_bytes() == b"half of a cell" and not target.exists()
    return left


@needs_sigkill
def test_a_run_removes_what_killed_writers_left(tmp_path: Path) -> None:
    out = tmp_path / "run"
    finished = _write(
        out / "cells" / "done.csv",
        csv_text([ResultRow("d", "a", "b", "cos", 0, "acc", 1.0)]).encode(),
    )
    before = finished.read_bytes()
    killed = [killed_mid_write(out / "cells" / "cell.csv"), killed_mid_write(out / "results.csv")]
    live = tagged(out / "models" / "ds", "m.pt", os.getpid())  # a writer still running
    CellStore(out)
    assert not any(p.exists() for p in killed)
    assert live.exists() and finished.read_bytes() == before


@needs_sigkill
def test_a_report_removes_what_killed_writers_left(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    rows = [
        ResultRow("ds", a, b, "cosine", 0, "accuracy", 0.5) for a, b in (("x", "y"), ("y", "x"))
    ]
    _write(folder / "results.csv", csv_text(rows).encode())
    killed = killed_mid_write(folder / "heatmaps" / "ds__cosine__accuracy.png")
    live = tagged(folder, "summary.md", os.getpid())
    write_report(folder)
    assert not killed.exists() and live.exists()
    assert (folder / "heatmaps" / "ds__cosine__accuracy.png").read_bytes()[:4] == b"\x89PNG"


FIELDS = {"encoder": "e", "encoder_fingerprint": "f", "dataset": "d", "split": "train"}


@needs_sigkill
def test_the_cache_removes_what_killed_writers_left(tmp_path: Path) -> None:
    key = make_key(FIELDS)
    partial = tmp_path / "partial" / key
    killed_chunk = killed_mid_write(partial / "chunk_000000000000_000000000005.npy")
    dead = dead_pid()
    staging = tagged(tmp_path / "embeddings" / key[:2], key, dead)
    other = tagged(tmp_path / "embeddings" / "ff", "f" * 64, dead)
    live = tagged(tmp_path / "partial" / ("0" * 64), "chunks.json", os.getpid())
    full = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = EmbeddingCache(tmp_path).compute(FIELDS, 10, lambda a, b: full[a:b], chunk_size=5)
    assert np.array_equal(out, full)
    assert not killed_chunk.exists() and not staging.exists() and not other.exists()
    assert live.exists()
    assert [p.name for p in (tmp_path / "embeddings" / key[:2]).iterdir()] == [key]
