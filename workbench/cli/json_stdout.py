"""With ``--json``, stdout carries the JSON document and nothing else.

ONNX Runtime's percentile and entropy calibrators ``print`` progress, and native code may write to
file descriptor 1 directly; either would make the output unparseable. For the length of the command,
descriptor 1 and ``sys.stdout`` point at stderr, and the JSON goes to a duplicate of the real stdout.
When ``sys.stdout`` is not descriptor 1 (``main()`` called from a notebook or a test that captures it),
the JSON goes to that ``sys.stdout``, where its caller reads it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO

#: Where ``print_json`` writes while a command runs under ``json_only_stdout``; None means sys.stdout.
json_stream: TextIO | None = None


@contextlib.contextmanager
def json_only_stdout(enabled: bool) -> Iterator[None]:
    global json_stream
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    real = os.fdopen(saved, "w", encoding="utf-8")
    os.dup2(2, 1)
    previous, sys.stdout = sys.stdout, sys.stderr
    json_stream = real if _is_descriptor_1(previous) else previous
    try:
        yield
    finally:
        json_stream = None
        sys.stdout = previous
        real.flush()
        os.dup2(saved, 1)
        real.close()


def _is_descriptor_1(stream: TextIO) -> bool:
    try:
        return stream.fileno() == 1
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both OSError and ValueError
        return False
