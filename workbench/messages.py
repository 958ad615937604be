"""A library's error message kept whole enough to act on.

ONNX Runtime puts the useful part of a failure on its later lines ("index: 0 Got: 1 Expected: 2"
follows the node's name), so cutting at the first line break hides it. A message is kept up to
``MAX_LINES`` lines; a child process's traceback is reduced to the exception it ends with.
"""

from __future__ import annotations

MAX_LINES = 20


def library_message(text: str | BaseException, max_lines: int = MAX_LINES) -> str:
    """The first ``max_lines`` non-blank lines of a message (of the final exception, for a traceback)."""
    text = str(text).strip()
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback"):
        ends = [i for i, line in enumerate(lines) if not line.startswith((" ", "Traceback"))]
        lines = lines[ends[-1]:] if ends else lines[-1:]
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... ({len(lines) - max_lines} more lines with --debug)"]
    return "\n".join(lines)
