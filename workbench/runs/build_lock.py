"""One build at a time per workspace, and one timing at a time per user on this machine.

Two builds at once (two terminals, a notebook beside a CLI sweep) fight for the cores and both
record slowed timings, and one may clean up what the other is writing. So a build holds
``<workspace>/build.lock`` while it writes, and the timing step also holds a per-user lock
(``$WORKBENCH_TIMING_LOCK``, else under ``$XDG_RUNTIME_DIR`` or ``~/.cache``) shared by every
workspace of that user. A second process waits, saying for whom, until ``WORKBENCH_LOCK_WAIT_S``
(default 30 minutes) and then refuses in one sentence; cancelling works while it waits.

The locks are ``flock`` locks: the system drops them when a process dies, so a killed build never
leaves a stale lock behind. Where ``fcntl`` does not exist (Windows) builds are not serialised.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import Busy, WorkbenchError
from workbench.progress import Progress

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = "build.lock"
DEFAULT_WAIT_S = 1800.0
_POLL_S = 0.2


def wait_limit_s() -> float:
    try:
        return float(os.environ.get("WORKBENCH_LOCK_WAIT_S", DEFAULT_WAIT_S))
    except ValueError:
        return DEFAULT_WAIT_S


def timing_lock_path() -> Path:
    """Per user: every workspace of one person shares it, other people's builds are never blocked."""
    if os.environ.get("WORKBENCH_TIMING_LOCK"):
        return Path(os.environ["WORKBENCH_TIMING_LOCK"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "workbench" if runtime else Path.home() / ".cache" / "workbench"
    return base / "timing.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", time.time())))
    return f"process {info.get('pid', '?')} ({info.get('what', 'a build')}, since {since})"


def _say_holder(handle: int, what: str) -> None:
    """Who holds the lock, for a waiting process to name; best effort: on a full disk gc must still run."""
    with contextlib.suppress(OSError):
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}).encode(), 0)


@contextmanager
def hold(path: Path, what: str, progress: Progress | None = None) -> Iterator[None]:
    """Hold the lock at ``path`` for the block; wait (reporting progress) and refuse after the limit."""
    if fcntl is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WorkbenchError(f"Cannot take the lock '{path}' ({exc.strerror}): the folder is read-only or not "
                             f"writable by you, so {what} did not start and nothing was changed;",
                             "make it writable, or choose another folder (--workspace); listing commands "
                             "(runs, show, report, gc --dry-run) still work.") from exc
    try:
        deadline = time.monotonic() + wait_limit_s()
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(path)
                if time.monotonic() >= deadline:
                    raise Busy(f"Another build holds '{path}' ({holder}) and did not finish within "
                               f"{wait_limit_s():g} s, so this one did not start;",
                               "wait for it to finish or stop it, then run again (WORKBENCH_LOCK_WAIT_S sets "
                               "how long to wait).") from None
                if progress is not None:
                    progress.report("wait", 0.0, f"waiting for {holder} to finish")
                time.sleep(_POLL_S)
        _say_holder(handle, what)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(handle, 0)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)
