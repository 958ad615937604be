"""Every temporary file of a build inside the workspace: its own and those its libraries make.

A temp folder on another file system than the workspace breaks the final rename of a variant
(``EXDEV``), and what a killed build leaves in the system temp folder is out of gc's sight.
ONNX Runtime's quantization tools make their folders with ``tempfile`` and take no folder
argument, so for the length of a build ``tempfile.tempdir`` points at a scratch folder under
the workspace; gc removes scratch folders that a killed build left behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SWITCH = threading.Lock()
#: Scratch folders of the builds running in this process, newest last, and the temp folder before them.
_active: list[str] = []
_original: list[str | None] = []


@contextmanager
def build_scratch(parent: Path) -> Iterator[Path]:
    """A fresh folder under ``parent`` that is the process's temp folder until the block ends."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"build-{os.getpid()}-", dir=parent))
    with _SWITCH:
        if not _active:
            _original[:] = [tempfile.tempdir]
        _active.append(str(folder))
        tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        with _SWITCH:  # builds in other threads may end in any order: the newest live one keeps the switch
            _active.remove(str(folder))
            tempfile.tempdir = _active[-1] if _active else _original[0]
        shutil.rmtree(folder, ignore_errors=True)
