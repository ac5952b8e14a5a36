"""Text handed to matplotlib is drawn as written: a name never becomes mathtext."""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["figure", "plain_text", "png_bytes"]


def figure(
    width: float,
    height: float,
    dpi: int = 100,
    *,
    layout: Literal["constrained", "compressed", "tight"] | None = None,
) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches on an Agg canvas: no display
    and no global pyplot state (``ImportError`` without matplotlib, the ``plot`` extra).
    ``layout``: matplotlib's layout engine (e.g. ``"constrained"`` for a grid of panels that
    share one colour bar); None: none, the caller lays the figure out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    """``fig`` as PNG bytes, without the software stamp: the same figure gives the same bytes."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def plain_text(text: object) -> str:
    """``str(text)`` escaped so that matplotlib draws it literally.

    matplotlib parses a string holding an even number of unescaped ``$`` as mathtext (and fails
    on invalid TeX such as ``$x^$``). Escaping every ``$`` as ``\\$`` leaves no unescaped ``$``,
    so the string is plain text, and matplotlib draws each ``\\$`` of plain text as ``$``: the
    text shown is exactly ``str(text)``, backslashes included. Every label, title, tick and
    legend string built from user input goes through this function.
    """
    return str(text).replace("$", "\\$")
