"""Text handed to matplotlib is drawn as written: a name never becomes mathtext."""

from __future__ import annotations

__all__ = ["plain_text"]


def plain_text(text: object) -> str:
    """``str(text)`` escaped so that matplotlib draws it literally.

    matplotlib parses a string holding an even number of unescaped ``$`` as mathtext (and fails
    on invalid TeX such as ``$x^$``). Escaping every ``$`` as ``\\$`` leaves no unescaped ``$``,
    so the string is plain text, and matplotlib draws each ``\\$`` of plain text as ``$``: the
    text shown is exactly ``str(text)``, backslashes included. Every label, title, tick and
    legend string built from user input goes through this function.
    """
    return str(text).replace("$", "\\$")
