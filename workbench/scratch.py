"""Every temporary file of a build inside the workspace: its own and those its libraries make.

A temp folder on another file system than the workspace breaks the final rename of a variant
(``EXDEV``), and what a killed build leaves in the system temp folder is out of gc's sight. So a
build makes a scratch folder under ``<workspace>/.workbench-tmp/`` and hands it on explicitly: the
workbench's own temp folders are made in ``scratch_folder()`` (this thread's build), and ONNX
Runtime's quantization tools, which make their folders with ``tempfile`` and take no folder
argument, run in a child process whose ``TMPDIR`` is the scratch folder. ``tempfile.tempdir`` is
never changed: a notebook's own temp files on another thread stay where they belong.

The folder carries ``SCRATCH_MARKER`` (the builder's pid and start time): gc removes only
folders with that marker, and only once their process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import psutil

#: Written by the build into its scratch folder: whose it is. gc never touches a folder without it.
SCRATCH_MARKER = ".workbench-scratch"
_current: ContextVar[Path | None] = ContextVar("workbench_scratch", default=None)


def scratch_folder() -> Path | None:
    """The scratch folder of the build running on this thread, or None outside a build."""
    return _current.get()


def temp_folder(prefix: str) -> tempfile.TemporaryDirectory:
    """A temporary folder in this build's scratch folder (the system temp folder outside a build)."""
    folder = scratch_folder()
    return tempfile.TemporaryDirectory(prefix=prefix, dir=str(folder) if folder is not None else None)


def child_env() -> dict[str, str]:
    """The environment for a child process of the build: its temp files land in the scratch folder."""
    folder = scratch_folder()
    env = dict(os.environ)
    if folder is not None:
        env.update(TMPDIR=str(folder), TEMP=str(folder), TMP=str(folder))
    return env


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


@contextmanager
def build_scratch(parent: Path) -> Iterator[Path]:
    """A fresh, marked folder under ``parent``, this thread's scratch folder until the block ends."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"build-{os.getpid()}-", dir=parent))
    (folder / SCRATCH_MARKER).write_text(json.dumps({"pid": os.getpid(), "started": _process_started(os.getpid())}))
    token = _current.set(folder)
    try:
        yield folder
    finally:
        _current.reset(token)
        shutil.rmtree(folder, ignore_errors=True)


def is_scratch(folder: Path) -> bool:
    """A folder a build made (it holds the marker), whatever its name."""
    return (folder / SCRATCH_MARKER).is_file()


def scratch_is_live(folder: Path) -> bool:
    """Its builder still runs (same pid and same start time, so a reused pid does not count)."""
    try:
        owner = json.loads((folder / SCRATCH_MARKER).read_text())
        pid, started = int(owner["pid"]), owner.get("started")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    now = _process_started(pid)
    return now is not None and (started is None or abs(now - float(started)) < 1.0)
