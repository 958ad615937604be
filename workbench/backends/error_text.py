"""Backend errors as one readable line, so a refusal quoted in a note or an ``error:`` line is whole."""

from __future__ import annotations

import re

_LOAD_PATH = re.compile(r"Load model from \S+ failed:\s*")


def error_text(error: str, limit: int = 400) -> str:
    """The file path dropped (the message names the file already), lines joined, and a very long text
    cut after a whole clause, never mid-word."""
    text = " ".join(_LOAD_PATH.sub("", error).split())
    if len(text) <= limit:
        return text
    cut = max(text.rfind(". ", 0, limit), text.rfind(" : ", 0, limit), text.rfind(", ", 0, limit))
    return text[: cut if cut > limit // 2 else text.rfind(" ", 0, limit)].rstrip(" .:,") + " (...)"
