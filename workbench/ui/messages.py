"""The few HTML snippets every panel uses to speak to a person: errors, notes, headings."""

from __future__ import annotations

from html import escape

from workbench.errors import WorkbenchError

_BOX = "padding:6px 10px;margin:4px 0;border-radius:4px;border-left:4px solid {edge};background:{fill}"


def error_html(exc: BaseException | str) -> str:
    """Problem first, then what to do, the same sentences the CLI prints."""
    if isinstance(exc, WorkbenchError) and exc.fix:
        body = f"<b>{escape(exc.problem)}</b><br>What to do: {escape(exc.fix)}"
    else:
        body = f"<b>{escape(str(exc))}</b>"
    return f'<div class="wb-error" style="{_BOX.format(edge="#c62828", fill="#fdecea")}">{body}</div>'


def note_html(text: str, warn: bool = False) -> str:
    style = _BOX.format(edge="#f9a825", fill="#fff8e1") if warn else _BOX.format(edge="#1565c0", fill="#e8f0fe")
    return f'<div class="wb-note" style="{style}">{escape(text)}</div>'


def heading_html(text: str) -> str:
    return f"<h4 style='margin:6px 0 2px 0'>{escape(text)}</h4>"
