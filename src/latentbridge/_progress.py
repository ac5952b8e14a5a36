"""Progress bars drawn by ``tqdm``, an optional dependency.

:func:`progress_bar` returns a :class:`ProgressBar`: ``update(n)`` advances it by ``n``,
``close()`` (or leaving a ``with`` block) ends it, and calling it as ``bar(done, total)`` moves it
to ``done`` of ``total`` -- the ``progress(done, total)`` callback of
:meth:`latentbridge.encoders.Encoder.encode` and :meth:`latentbridge.cache.EmbeddingCache.compute`.
The line shows the description, the count, the rate and, once the total is known, the time
remaining. A bar that is off, or one made where ``tqdm`` is not installed, draws nothing.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, TextIO

__all__ = ["ProgressBar", "progress_bar"]


class ProgressBar:
    """A ``tqdm`` bar on ``stream`` (default standard error) labelled ``label``.

    ``total`` may be left ``None`` and given by the first ``bar(done, total)``. With
    ``enabled=False``, or without ``tqdm``, every method does nothing.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        total: int | None = None,
        enabled: bool = True,
        unit: str = "it",
    ) -> None:
        self.label = label
        self._bar: Any = None
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:  # progress is a nicety: no bar rather than an error
            return
        self._bar = tqdm(
            total=total,
            desc=label,
            unit=unit,
            file=stream if stream is not None else sys.stderr,
            dynamic_ncols=True,
        )

    def update(self, n: int = 1) -> None:
        """Advance the bar by ``n``."""
        if self._bar is not None:
            self._bar.update(n)

    def __call__(self, done: int, total: int) -> None:
        """Move the bar to ``done`` of ``total``; the bar ends once ``done >= total``."""
        if self._bar is None:
            return
        self._bar.update(done - self._bar.n)
        if self._bar.total != total:  # the total is news: draw it now
            self._bar.total = total
            self._bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        """End the bar, leaving its last line on the stream (closing twice is harmless)."""
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def progress_bar(
    total: int | None,
    desc: str,
    *,
    enabled: bool = True,
    stream: TextIO | None = None,
    unit: str = "it",
) -> ProgressBar:
    """A :class:`ProgressBar` over ``total`` steps (``None``: not known yet) labelled ``desc``;
    with ``enabled=False`` one that draws nothing."""
    return ProgressBar(desc, stream, total=total, enabled=enabled, unit=unit)
