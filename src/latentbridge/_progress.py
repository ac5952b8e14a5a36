"""A dependency-free progress bar on standard error."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``bar(done, total)`` redraws ``label [#####.....] done/total rate``.

    On a terminal it redraws in place; elsewhere (logs, CI) it prints a line at every tenth.
    """

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.start = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        fraction = 1.0 if total == 0 else done / total
        decile = int(fraction * 10)
        if not self.tty and decile == self._last_decile and done < total:
            return
        self._last_decile = decile
        filled = round(fraction * self.width)
        elapsed = max(time.monotonic() - self.start, 1e-9)
        line = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} "
            f"({done / elapsed:.0f}/s)"
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
