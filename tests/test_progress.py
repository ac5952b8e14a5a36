"""Progress bars (``latentbridge._progress``, drawn by tqdm); the encoding bars are tested with
``latentbridge.encode`` in test_cache.py."""

from __future__ import annotations

import io
import re
import sys

import pytest

from latentbridge._progress import ProgressBar, progress_bar


def _final_line(stream: io.StringIO) -> str:
    """The last state the bar drew (tqdm redraws in place with carriage returns)."""
    return re.split(r"[\r\n]", stream.getvalue().rstrip("\n"))[-1]


def test_bar_writes_its_description_count_and_time_left_to_the_stream() -> None:
    stream = io.StringIO()
    with progress_bar(
        10, "encode digits/train with glove-50d", stream=stream, unit="sample"
    ) as bar:
        bar.update(3)
        bar.update(4)
    line = _final_line(stream)
    assert line.startswith("encode digits/train with glove-50d:")
    assert "7/10" in line and "sample/s" in line
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", line), line  # elapsed < remaining


def test_nothing_is_written_when_progress_is_off() -> None:
    stream = io.StringIO()
    with progress_bar(10, "quiet", stream=stream, enabled=False) as bar:
        bar.update(5)
        bar(10, 10)
    assert stream.getvalue() == ""


def test_without_tqdm_there_is_quietly_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now raises ImportError
    stream = io.StringIO()
    with progress_bar(4, "no tqdm", stream=stream) as bar:
        bar.update(4)
    ProgressBar("no tqdm either", stream)(1, 2)
    assert stream.getvalue() == ""


def test_called_with_done_and_total_the_bar_moves_there_and_ends_at_the_total() -> None:
    stream = io.StringIO()
    bar = ProgressBar("dataset: cells", stream)  # the total comes with the first call
    bar(1, 5)
    assert "1/5" in _final_line(stream)
    bar(2, 5)
    bar(3, 5)  # (drawn at most every 0.1 s, tqdm's default)
    assert not stream.getvalue().endswith("\n")  # not ended
    bar(5, 5)
    assert stream.getvalue().endswith("\n") and "5/5" in _final_line(stream)
    written = stream.getvalue()
    bar(5, 5)  # ended: later calls draw nothing
    bar.close()
    assert stream.getvalue() == written
