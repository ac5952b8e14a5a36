"""Streaming projection of embedding files (``latentbridge.streaming`` and ``latentbridge
project``): the in-memory modules' values, chunk by chunk; resuming after a kill; never a
half-written output; user errors that write nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import latentbridge as lb
from latentbridge import streaming
from latentbridge.cli import main
from latentbridge.streaming import default_chunk_size, partial_paths, project_file

from .test_benchmark_scripts import _script
from .test_cli_errors import _fails as _one_line_error

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, D, K = 103, 8, 7
BUILTINS = ("cosine", "euclidean", "l1", "linf", "dot", "angular", "rbf")
needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL here")


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Any]:
    """``x.npy`` (N, D) float32, ``idx.npy`` (K distinct indices) and ``anchors.npy`` = x[idx]."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((N, D)) * 2 + 0.5).astype(np.float32)
    idx = rng.choice(N, K, replace=False)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "idx.npy", idx)
    np.save(tmp_path / "anchors.npy", x[idx])
    return {
        "x": x,
        "idx": idx,
        "latents": tmp_path / "x.npy",
        "indices": tmp_path / "idx.npy",
        "anchors": tmp_path / "anchors.npy",
        "folder": tmp_path,
    }


def _reference(
    x: np.ndarray,
    anchors: np.ndarray,
    projections: tuple[str, ...],
    normalization: str = "none",
    relative_normalization: str = "none",
) -> np.ndarray:
    """The in-memory result: RelativeProjection for one projection, the product's subspaces
    side by side for several."""
    if len(projections) == 1:
        module = lb.RelativeProjection(projections[0], normalization, relative_normalization)
        return module.fit(anchors)(x).detach().numpy()
    product = lb.ProductProjection(
        list(projections),
        anchors=anchors,
        normalization=normalization,
        relative_normalization=relative_normalization,
    )
    relative = product.relative(x).detach().numpy()
    return relative.reshape(x.shape[0], -1)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _count_chunks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of rows of every chunk computed from now on (the list of sizes)."""
    calls: list[int] = []
    original = streaming._project_chunk

    def counting(module: Any, x: np.ndarray) -> torch.Tensor:
        calls.append(x.shape[0])
        return original(module, x)

    monkeypatch.setattr(streaming, "_project_chunk", counting)
    return calls


@pytest.fixture
def chunk_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Record the number of rows of every chunk computed (the list of their sizes)."""
    yield _count_chunks(monkeypatch)


def _interrupt_after(
    monkeypatch: pytest.MonkeyPatch, chunks: int, error: type[BaseException] = KeyboardInterrupt
) -> None:
    """Make the chunk computation raise ``error`` once ``chunks`` chunks have been computed."""
    original = streaming._project_chunk
    count = [0]

    def failing(module: Any, x: np.ndarray) -> torch.Tensor:
        if count[0] == chunks:
            raise error("injected")
        count[0] += 1
        return original(module, x)

    monkeypatch.setattr(streaming, "_project_chunk", failing)


# -- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("projection", BUILTINS)
def test_every_projection_equals_the_in_memory_module(
    data: dict[str, Any], projection: str
) -> None:
    out = project_file(
        data["latents"],
        data["folder"] / "out.npy",
        anchor_indices=data["indices"],
        projections=[projection],
        chunk_size=10,  # does not divide N = 103
        progress=False,
    )
    result = np.load(out)
    expected = _reference(data["x"], data["x"][data["idx"]], (projection,))
    assert result.dtype == np.float32 and result.shape == (N, K)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("normalization", "relative_normalization"),
    [("center", "none"), ("standard", "l2"), ("l2", "standardize"), ("whiten", "none")],
)
@pytest.mark.parametrize("projections", [("euclidean",), ("cosine", "l1", "linf")])
def test_normalisations_and_products_equal_the_in_memory_modules(
    data: dict[str, Any],
    normalization: str,
    relative_normalization: str,
    projections: tuple[str, ...],
) -> None:
    out = project_file(
        data["latents"],
        data["folder"] / "out.npy",
        anchors=data["anchors"],
        projections=projections,
        normalization=normalization,
        relative_normalization=relative_normalization,
        chunk_size=17,
        progress=False,
    )
    expected = _reference(
        data["x"], data["x"][data["idx"]], projections, normalization, relative_normalization
    )
    result = np.load(out)
    assert result.shape == (N, len(projections) * K)
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)


def test_the_subspaces_lie_side_by_side_in_the_order_given(data: dict[str, Any]) -> None:
    order = ("l1", "cosine", "dot")
    out = project_file(
        data["latents"],
        data["folder"] / "out.npy",
        anchors=data["anchors"],
        projections=order,
        progress=False,
    )
    result = np.load(out)
    for s, name in enumerate(order):
        single = _reference(data["x"], data["x"][data["idx"]], (name,))
        np.testing.assert_allclose(result[:, s * K : (s + 1) * K], single, rtol=1e-6, atol=1e-6)
    # a negative control: another order gives other columns
    swapped = _reference(data["x"], data["x"][data["idx"]], ("cosine", "l1", "dot"))
    assert not np.allclose(result, swapped)


@pytest.mark.parametrize("chunk_size", [1, 10, 103, 104, 5000, None])
def test_the_chunk_size_changes_nothing_and_bounds_every_chunk(
    data: dict[str, Any], chunk_size: int | None, chunk_calls: list[int]
) -> None:
    out = project_file(
        data["latents"],
        data["folder"] / "out.npy",
        anchor_indices=data["indices"],
        projections=("euclidean", "cosine"),
        chunk_size=chunk_size,
        progress=False,
    )
    expected = _reference(data["x"], data["x"][data["idx"]], ("euclidean", "cosine"))
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-6, atol=1e-6)
    size = chunk_size if chunk_size is not None else default_chunk_size(D, K, 2)
    assert sum(chunk_calls) == N and max(chunk_calls) == min(size, N)
    assert len(chunk_calls) == -(-N // size)
    assert _files(data["folder"]) == ["anchors.npy", "idx.npy", "out.npy", "x.npy"]


def test_float16_output_is_the_float32_result_rounded(data: dict[str, Any]) -> None:
    out = project_file(
        data["latents"],
        data["folder"] / "out.npy",
        anchor_indices=data["indices"],
        projections=("cosine", "euclidean"),
        dtype="float16",
        chunk_size=9,
        progress=False,
    )
    result = np.load(out)
    expected = _reference(data["x"], data["x"][data["idx"]], ("cosine", "euclidean"))
    assert result.dtype == np.float16
    np.testing.assert_allclose(result, expected.astype(np.float16), rtol=1e-3, atol=1e-3)
    assert np.abs(result.astype(np.float32) - expected).max() > 0  # it was rounded


def test_float64_latents_are_computed_in_float64(data: dict[str, Any]) -> None:
    x64 = data["x"].astype(np.float64) + 1e-9  # digits that float32 cannot hold
    np.save(data["folder"] / "x64.npy", x64)
    out = project_file(
        data["folder"] / "x64.npy",
        data["folder"] / "out.npy",
        anchor_indices=data["indices"],
        projections=("euclidean", "cosine"),
        dtype="float64",
        chunk_size=10,
        progress=False,
    )
    expected = _reference(x64, x64[data["idx"]], ("euclidean", "cosine"))
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-12, atol=1e-12)
    float32 = _reference(data["x"], data["x"][data["idx"]], ("euclidean", "cosine"))
    assert not np.array_equal(np.load(out), float32.astype(np.float64))


def test_half_big_endian_and_fortran_latents(data: dict[str, Any]) -> None:
    x = data["x"]
    expected = _reference(x, x[data["idx"]], ("euclidean",))
    np.save(data["folder"] / "f.npy", np.asfortranarray(x))
    np.save(data["folder"] / "be.npy", x.astype(">f4"))
    for name in ("f.npy", "be.npy"):
        out = project_file(
            data["folder"] / name,
            data["folder"] / f"out-{name}",
            anchor_indices=data["indices"],
            projections="euclidean",
            chunk_size=11,
            progress=False,
        )
        np.testing.assert_allclose(np.load(out), expected, rtol=1e-6, atol=1e-6)
    half = x.astype(np.float16)
    np.save(data["folder"] / "h.npy", half)
    out = project_file(
        data["folder"] / "h.npy",
        data["folder"] / "out-h.npy",
        anchor_indices=data["indices"],
        projections="euclidean",
        progress=False,
    )
    ref = lb.RelativeProjection("euclidean").fit(half[data["idx"]].astype(np.float32))
    np.testing.assert_allclose(
        np.load(out), ref(half.astype(np.float32)).numpy(), rtol=1e-6, atol=1e-6
    )


def test_anchors_by_file_by_indices_and_by_array_agree(data: dict[str, Any]) -> None:
    options: dict[str, Any] = {
        "projections": ("cosine", "rbf"),
        "normalization": "standard",
        "chunk_size": 13,
        "progress": False,
    }
    folder = data["folder"]
    by_file = project_file(data["latents"], folder / "a.npy", anchors=data["anchors"], **options)
    by_idx = project_file(
        data["latents"], folder / "b.npy", anchor_indices=data["indices"], **options
    )
    by_array = project_file(
        data["latents"],
        folder / "c.npy",
        anchors=torch.from_numpy(data["x"][data["idx"]]),
        **options,
    )
    by_list = project_file(
        data["latents"], folder / "d.npy", anchor_indices=data["idx"].tolist(), **options
    )
    reference = by_file.read_bytes()
    assert all(p.read_bytes() == reference for p in (by_idx, by_array, by_list))
    # negative control: other anchors, other bytes
    other = project_file(
        data["latents"], folder / "e.npy", anchor_indices=data["idx"][::-1].copy(), **options
    )
    assert other.read_bytes() != reference


def test_an_empty_file_gives_an_empty_output(data: dict[str, Any]) -> None:
    np.save(data["folder"] / "empty.npy", np.zeros((0, D), dtype=np.float32))
    out = project_file(
        data["folder"] / "empty.npy",
        data["folder"] / "out.npy",
        anchors=data["anchors"],
        projections=("cosine", "l1"),
        progress=False,
    )
    result = np.load(out)
    assert result.shape == (0, 2 * K) and result.dtype == np.float32


def test_repeated_anchor_rows_warn_as_the_modules_do(data: dict[str, Any]) -> None:
    x = data["x"].copy()
    x[5] = x[3]
    np.save(data["folder"] / "dup.npy", x)
    with pytest.warns(UserWarning, match="duplicate row"):
        project_file(
            data["folder"] / "dup.npy",
            data["folder"] / "out.npy",
            anchor_indices=[3, 5, 9],
            progress=False,
        )
    assert (data["folder"] / "out.npy").is_file()


def test_the_progress_bar_counts_rows_and_is_off_when_asked(
    data: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    common = {"anchors": data["anchors"], "chunk_size": 50}
    project_file(data["latents"], data["folder"] / "a.npy", progress=True, **common)
    err = capsys.readouterr().err
    assert "project a.npy" in err and f"{N}/{N}" in err and "row/s" in err
    project_file(data["latents"], data["folder"] / "b.npy", progress=False, **common)
    assert capsys.readouterr().err == ""


def test_default_chunk_size_aims_at_the_memory_budget() -> None:
    rows = default_chunk_size(768, 1280, 1, itemsize=4, out_itemsize=2)
    per_row = 4 * (4 * 768 + 3 * 1280) + 2 * 1280
    assert rows == streaming.DEFAULT_CHUNK_MEMORY // per_row
    assert default_chunk_size(768, 1280, 4) < rows  # a product needs more per row
    assert default_chunk_size(10**6, 10**6, memory=1) == 1
    with pytest.raises(ValueError, match="num_anchors"):
        default_chunk_size(8, 0)


# -- resuming -------------------------------------------------------------------------------


def _job(data: dict[str, Any], out: Path, **options: Any) -> Path:
    settings: dict[str, Any] = {
        "anchor_indices": data["indices"],
        "projections": ("cosine", "l1"),
        "dtype": "float16",
        "chunk_size": 10,
        "progress": False,
    }
    settings.update(options)
    latents = settings.pop("latents", data["latents"])
    return project_file(latents, out, **settings)


def _rows_done(out: Path) -> int:
    state = json.loads(partial_paths(out)[1].read_text(encoding="utf-8"))
    return int(state["rows_done"])


def test_an_interrupted_run_resumes_without_recomputing(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = data["folder"] / "out.npy"
    reference = _job(data, data["folder"] / "ref.npy").read_bytes()
    _interrupt_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        _job(data, out)
    partial, sidecar, lock = partial_paths(out)
    assert not out.exists() and partial.is_file() and sidecar.is_file() and not lock.exists()
    assert _rows_done(out) == 40
    monkeypatch.undo()
    calls = _count_chunks(monkeypatch)
    _job(data, out)
    assert calls == [10] * 6 + [3]  # rows 40..102 only
    assert out.read_bytes() == reference
    assert _files(data["folder"]) == ["anchors.npy", "idx.npy", "out.npy", "ref.npy", "x.npy"]


def test_a_run_killed_after_its_last_chunk_only_renames(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch, chunk_calls: list[int]
) -> None:
    out = data["folder"] / "out.npy"
    reference = _job(data, data["folder"] / "ref.npy").read_bytes()
    chunk_calls.clear()
    original_replace = os.replace

    def killed(src: Any, dst: Any) -> None:
        if str(dst) == str(out):
            raise KeyboardInterrupt  # killed between the last sidecar update and the rename
        original_replace(src, dst)

    monkeypatch.setattr(streaming.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        _job(data, out)
    assert _rows_done(out) == N and not out.exists()
    monkeypatch.setattr(streaming.os, "replace", original_replace)
    chunk_calls.clear()
    _job(data, out)
    assert chunk_calls == [] and out.read_bytes() == reference


_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    import torch
    torch.set_num_threads(1)
    from latentbridge import streaming

    mode, value, latents, out, indices = sys.argv[1:6]
    original = streaming._project_chunk
    calls = [0]

    def chunk(module, x):
        if mode == "self" and calls[0] == int(value):
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "slow":
            time.sleep(float(value))
        calls[0] += 1
        return original(module, x)

    streaming._project_chunk = chunk
    streaming.project_file(latents, out, anchor_indices=indices, projections=("cosine", "l1"),
                           dtype="float16", chunk_size=10, progress=False)
    """
)


def _child(mode: str, value: str, data: dict[str, Any], out: Path) -> subprocess.Popen[bytes]:
    argv = [mode, value, str(data["latents"]), str(out), str(data["indices"])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _CHILD, *argv], env=env)


@needs_sigkill
def test_a_process_killed_mid_run_resumes_to_the_same_bytes(
    data: dict[str, Any], chunk_calls: list[int]
) -> None:
    out = data["folder"] / "out.npy"
    child = _child("self", "3", data, out)  # SIGKILL in the middle of the 4th chunk
    assert child.wait(timeout=120) == -signal.SIGKILL
    assert not out.exists() and _rows_done(out) == 30
    _job(data, out)
    assert chunk_calls == [10] * 7 + [3]
    chunk_calls.clear()
    reference = _job(data, data["folder"] / "ref.npy").read_bytes()
    assert out.read_bytes() == reference


@needs_sigkill
def test_a_process_killed_from_outside_resumes_to_the_same_bytes(
    data: dict[str, Any], chunk_calls: list[int]
) -> None:
    out = data["folder"] / "out.npy"
    sidecar = partial_paths(out)[1]
    child = _child("slow", "0.05", data, out)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            assert not out.exists()  # never there before the end
            if sidecar.is_file() and _rows_done(out) >= 30:
                break
            time.sleep(0.005)
        else:
            pytest.fail("the child did not reach row 30")
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the child finished before it was killed"
    assert not out.exists()
    done = _rows_done(out)
    assert 30 <= done < N
    _job(data, out)
    assert sum(chunk_calls) == N - done  # the finished rows were not recomputed
    chunk_calls.clear()
    assert out.read_bytes() == _job(data, data["folder"] / "ref.npy").read_bytes()
    # what the killed writer left (a sidecar's temporary, the lock file) is gone
    assert _files(data["folder"]) == ["anchors.npy", "idx.npy", "out.npy", "ref.npy", "x.npy"]


@pytest.mark.parametrize(
    "change",
    [
        {"projections": ("l1", "cosine")},
        {"chunk_size": 7},
        {"dtype": "float32"},
        {"normalization": "center"},
        {"anchor_indices": [1, 2, 3]},
        "input",
    ],
    ids=["projections", "chunk", "dtype", "normalization", "anchors", "input"],
)
def test_the_partial_output_of_another_job_is_discarded(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch, change: dict[str, Any] | str
) -> None:
    out = data["folder"] / "out.npy"
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        _job(data, out)
    monkeypatch.undo()
    options: dict[str, Any] = {}
    if change == "input":
        x = data["x"].copy()
        x[50] += 1.0
        np.save(data["latents"], x)
        os.utime(data["latents"], ns=(time.time_ns() + 10**9,) * 2)
    else:
        assert isinstance(change, dict)
        options = change
    calls = _count_chunks(monkeypatch)
    with pytest.warns(UserWarning, match="discarding the unfinished output"):
        _job(data, out, **options)
    assert sum(calls) == N  # started again
    fresh = _job(data, data["folder"] / "fresh.npy", **options)
    assert out.read_bytes() == fresh.read_bytes()


def test_a_damaged_partial_file_is_started_again(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = data["folder"] / "out.npy"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        _job(data, out)
    monkeypatch.undo()
    partial = partial_paths(out)[0]
    partial.write_bytes(partial.read_bytes()[:-7])  # truncated, its sidecar intact
    reference = _job(data, data["folder"] / "ref.npy").read_bytes()
    calls = _count_chunks(monkeypatch)
    _job(data, out)
    assert sum(calls) == N and out.read_bytes() == reference


def test_a_failure_on_the_input_keeps_nothing(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    x = data["x"].copy()
    x[57, 2] = np.nan
    np.save(data["latents"], x)
    with pytest.raises(ValueError, match=r"row 57, column 2"):
        _job(data, data["folder"] / "out.npy")
    assert _files(data["folder"]) == ["anchors.npy", "idx.npy", "x.npy"]
    # and a failure of the computation itself, mid-run
    _interrupt_after(monkeypatch, 2, ValueError)
    with pytest.raises(ValueError, match="injected"):
        _job(data, data["folder"] / "out.npy", anchors=data["anchors"], anchor_indices=None)
    assert _files(data["folder"]) == ["anchors.npy", "idx.npy", "x.npy"]


def test_a_failed_run_leaves_no_folder_it_made(data: dict[str, Any]) -> None:
    x = data["x"].copy()
    x[0, 0] = np.nan
    np.save(data["latents"], x)
    with pytest.raises(ValueError, match="row 0, column 0"):
        _job(data, data["folder"] / "new" / "sub" / "out.npy")
    assert _files(data["folder"]) == ["anchors.npy", "idx.npy", "x.npy"]
    (data["folder"] / "kept").mkdir()  # a folder that was there is kept
    with pytest.raises(ValueError, match="row 0, column 0"):
        _job(data, data["folder"] / "kept" / "out.npy")
    assert _files(data["folder"] / "kept") == []


def test_values_that_do_not_fit_the_dtype_are_refused(data: dict[str, Any]) -> None:
    np.save(data["folder"] / "big.npy", data["x"] * 1e5)  # distances far above 65504
    with pytest.raises(ValueError, match="do not fit float16"):
        _job(
            data,
            data["folder"] / "out.npy",
            latents=data["folder"] / "big.npy",
            projections="euclidean",
            anchor_indices=[0, 1],
        )
    out = project_file(
        data["folder"] / "big.npy",
        data["folder"] / "out.npy",
        anchor_indices=[0, 1],
        projections="euclidean",
        progress=False,
    )
    assert np.isfinite(np.load(out)).all()  # negative control: float32 holds them


# -- the output file ------------------------------------------------------------------------


def test_the_output_never_exists_half_written(
    data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = data["folder"] / "out.npy"
    np.save(out, np.arange(3.0))
    old = out.read_bytes()
    original = streaming._project_chunk
    seen: list[bool] = []

    def watching(module: Any, x: np.ndarray) -> torch.Tensor:
        seen.append(out.read_bytes() == old)  # the old file, whole, until the end
        return original(module, x)

    monkeypatch.setattr(streaming, "_project_chunk", watching)
    _job(data, out, overwrite=True)
    assert len(seen) == 11 and all(seen)
    assert np.load(out).shape == (N, 2 * K)


def test_an_existing_output_is_refused_and_left_alone(data: dict[str, Any]) -> None:
    out = data["folder"] / "out.npy"
    out.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _job(data, out)
    assert out.read_bytes() == b"mine"
    assert _files(data["folder"]) == ["anchors.npy", "idx.npy", "out.npy", "x.npy"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file locks")
def test_a_second_writer_of_the_same_output_is_refused(data: dict[str, Any]) -> None:
    import fcntl

    out = data["folder"] / "out.npy"
    lock = partial_paths(out)[2]
    with lock.open("w") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        with pytest.raises(RuntimeError, match="another process is writing"):
            _job(data, out)
    assert not out.exists() and not partial_paths(out)[0].exists()


def _write(path: Path, content: bytes | np.ndarray) -> str:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content, allow_pickle=True)
    return str(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f, d: {"latents": f / "nope.npy"}, "no latents file"),
        (lambda f, d: {"latents": _write(f / "x.txt", b"1 2")}, "must be a .npy file"),
        (lambda f, d: {"latents": _write(f / "b.npy", b"garbage")}, "NumPy header"),
        (
            lambda f, d: {"latents": _write(f / "t.npy", d["x"].tobytes()[:0])},
            "NumPy header",
        ),
        (
            lambda f, d: {"latents": _write(f / "t.npy", (f / "x.npy").read_bytes()[:-4])},
            "truncated",
        ),
        (lambda f, d: {"latents": _write(f / "o.npy", np.array([{}], dtype=object))}, "objects"),
        (lambda f, d: {"latents": _write(f / "v.npy", d["x"][0])}, "2-D"),
        (lambda f, d: {"latents": _write(f / "i.npy", d["x"].astype(int))}, "float16, float32"),
        (lambda f, d: {"anchors": _write(f / "a.npy", d["x"][:3, :5])}, "D=8"),
        (lambda f, d: {"anchors": f / "none.npy"}, "no anchors file"),
        (lambda f, d: {"anchors": np.full((2, D), np.inf)}, "NaN or infinite"),
        (lambda f, d: {"anchor_indices": [0, N]}, r"\[0, 103\)"),
        (lambda f, d: {"anchor_indices": [-1, 2]}, r"\[0, 103\)"),
        (lambda f, d: {"anchor_indices": [1, 2, 1]}, "repeat"),
        (lambda f, d: {"anchor_indices": np.array([1.0, 2.0])}, "integer"),
        (lambda f, d: {"anchor_indices": np.array([[1, 2]])}, "1-D"),
        (lambda f, d: {"anchor_indices": []}, "at least one"),
        (lambda f, d: {"anchor_indices": f / "none.npy"}, "no anchor indices file"),
        (lambda f, d: {"anchor_indices": None}, "exactly one"),
        (lambda f, d: {"anchors": d["anchors"], "anchor_indices": d["idx"]}, "exactly one"),
        (lambda f, d: {"projections": ("cosine", "nosuch")}, "projection must be one of"),
        (lambda f, d: {"projections": ()}, "at least one"),
        (lambda f, d: {"normalization": "nosuch"}, "normalization"),
        (lambda f, d: {"dtype": "int8"}, "dtype must be one of"),
        (lambda f, d: {"chunk_size": 0}, "chunk_size"),
        (lambda f, d: {"out": f / "out.txt"}, "must end with .npy"),
        (lambda f, d: {"out": f / "x.npy", "overwrite": True}, "one of the input files"),
    ],
)
def test_invalid_arguments_are_refused_before_anything_is_written(
    data: dict[str, Any],
    make: Callable[[Path, dict[str, Any]], dict[str, Any]],
    message: str,
) -> None:
    folder = data["folder"]
    options = make(folder, data)
    before = _files(folder)
    latents = options.pop("latents", data["latents"])
    out = options.pop("out", folder / "out.npy")
    default = {} if "anchors" in options else {"anchor_indices": data["indices"]}
    settings = {**default, "progress": False, **options}
    with pytest.raises((ValueError, TypeError, OSError), match=message):
        project_file(latents, out, **settings)
    assert _files(folder) == before


def test_nan_anchors_selected_by_index_are_named_with_their_row(data: dict[str, Any]) -> None:
    x = data["x"].copy()
    x[4, 1] = np.inf
    np.save(data["latents"], x)
    with pytest.raises(ValueError, match="first at row 4 of latents"):
        _job(data, data["folder"] / "out.npy", anchor_indices=[2, 4])


# -- the command line ----------------------------------------------------------------------


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """``latentbridge project ...`` fails as every command does (one line, exit 2)."""
    line = _one_line_error(capsys, argv)
    assert line.startswith("latentbridge project: error: "), line
    return line


def test_the_command_writes_what_the_function_writes(
    data: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = data["folder"]
    argv = ["project", str(data["latents"]), "--anchor-indices", str(data["indices"])]
    argv += ["--projection", "cosine", "--projection", "l1", "--normalization", "center"]
    argv += ["--out", str(folder / "cli.npy"), "--dtype", "float16", "--chunk-size", "9"]
    assert main([*argv, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert f"{N} x {2 * K} float16" in captured.out and "cli.npy" in captured.out
    expected = _job(data, folder / "fn.npy", normalization="center", chunk_size=9)
    assert (folder / "cli.npy").read_bytes() == expected.read_bytes()
    # --overwrite replaces it
    again = ["project", str(data["latents"]), "--anchors", str(data["anchors"]), "--quiet"]
    again += ["--projection", "euclidean", "--out", str(folder / "cli.npy"), "--overwrite"]
    assert main(again) == 0
    capsys.readouterr()
    assert np.load(folder / "cli.npy").shape == (N, K)


def test_the_command_draws_a_bar_unless_quiet(
    data: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    argv = ["project", str(data["latents"]), "--anchors", str(data["anchors"])]
    assert main([*argv, "--projection", "cosine", "--out", str(data["folder"] / "o.npy")]) == 0
    assert f"{N}/{N}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--anchors", "{f}/nope.npy"], "no anchors file"),
        (["--anchors", "{f}/anchors.npy", "--anchor-indices", "{f}/idx.npy"], "not allowed"),
        ([], "one of the arguments --anchors --anchor-indices is required"),
        (["--anchors", "{f}/short.npy"], "D=8"),
        (["--anchor-indices", "{f}/idx.npy", "--projection", "nosuch"], "invalid choice"),
        (["--anchor-indices", "{f}/idx.npy", "--dtype", "bfloat16"], "invalid choice"),
        (["--anchor-indices", "{f}/idx.npy", "--chunk-size", "0"], "positive integer"),
        (["--anchor-indices", "{f}/bad_idx.npy"], "must not repeat"),
        (["--anchor-indices", "{f}/idx.npy", "--out", "{f}/out.txt"], "must end with .npy"),
        (["--anchor-indices", "{f}/idx.npy", "--out", "{f}/existing.npy"], "--overwrite"),
    ],
)
def test_command_errors_are_one_line_and_write_nothing(
    data: dict[str, Any], capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    folder = data["folder"]
    np.save(folder / "short.npy", data["x"][:3, :5])
    np.save(folder / "bad_idx.npy", np.array([1, 2, 1]))
    (folder / "existing.npy").write_bytes(b"mine")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    extra = [a.format(f=folder) for a in extra]
    argv = ["project", str(data["latents"]), "--projection", "cosine", "--quiet", *extra]
    if "--out" not in extra:
        argv += ["--out", str(folder / "out.npy")]
    line = _fails(capsys, argv)
    assert message in line, line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("problem", ["missing", "nan", "not-2d"])
def test_command_errors_on_the_latents(
    data: dict[str, Any], capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    folder = data["folder"]
    latents = folder / "bad.npy"
    if problem == "nan":
        x = data["x"].copy()
        x[80, 3] = np.nan
        np.save(latents, x)
    elif problem == "not-2d":
        np.save(latents, data["x"][0])
    before = _files(folder)
    argv = ["project", str(latents), "--anchors", str(data["anchors"]), "--projection", "cosine"]
    argv += ["--out", str(folder / "out.npy"), "--chunk-size", "10", "--quiet"]
    line = _fails(capsys, argv)
    expected = {"missing": "no latents file", "nan": "row 80, column 3", "not-2d": "2-D"}
    assert expected[problem] in line, line
    assert _files(folder) == before


def test_an_interrupted_command_says_how_to_resume(
    data: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_after(monkeypatch, 2)
    out = data["folder"] / "out.npy"
    argv = ["project", str(data["latents"]), "--anchors", str(data["anchors"]), "--quiet"]
    argv += ["--projection", "cosine", "--out", str(out), "--chunk-size", "10"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "run the same command again to resume" in err and "interrupted" in err
    monkeypatch.undo()
    assert main(argv) == 0
    assert not partial_paths(out)[0].exists()


# -- the benchmark --------------------------------------------------------------------------


def test_the_benchmark_runs_small(tmp_path: Path) -> None:
    bench = _script("bench_streaming")
    result = bench.run(
        rows=2000, dim=16, num_anchors=12, folder=tmp_path, chunk_size=300, keep_output=True
    )
    assert result["rows"] == 2000 and result["rows_per_s"] > 0
    assert result["peak_rss_anon_bytes"] > 0 and result["vm_hwm_bytes"] > 0
    assert result["out_bytes"] > 2000 * 12 * 2
    out = np.load(result["out"])
    assert out.shape == (2000, 12) and out.dtype == np.float16
    x = np.load(result["latents"])
    idx = np.load(result["indices"])
    np.testing.assert_allclose(
        out, _reference(x, x[idx], ("cosine",)).astype(np.float16), rtol=1e-3, atol=1e-3
    )


@pytest.mark.parametrize("error", [RuntimeError, MemoryError, OSError])
def test_a_failure_that_is_not_the_inputs_keeps_the_finished_rows(
    data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    """Out of memory (torch raises RuntimeError), a full disk: the rows stay for a rerun."""
    out = tmp_path / "kept.npy"
    reference = _job(data, data["folder"] / "ref.npy").read_bytes()
    _interrupt_after(monkeypatch, 3, error)
    with pytest.raises(error):
        _job(data, out)
    partial, sidecar, _ = partial_paths(out)
    assert partial.is_file() and sidecar.is_file() and not out.exists()
    monkeypatch.undo()
    calls = _count_chunks(monkeypatch)
    _job(data, out)
    assert sum(calls) < N and out.read_bytes() == reference
