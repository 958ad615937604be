"""Whether the machine was busy while a run was timed, so a slow timing is not taken for a slow variant.

Measured over the timing window itself: the CPU time every process spent (``/proc/stat`` through
psutil) less this process's own, as a share of all cores, and the 1-minute load average before
and after. Another process's build, a test suite or a browser taking more than ``BUSY_SHARE`` of
the machine marks the run's timings as taken under load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

#: Other processes using more than this share of all cores during timing make the timings suspect.
BUSY_SHARE = 0.25


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _own_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not on every platform
        return None


@contextmanager
def watch_machine_load() -> Iterator[dict]:
    """A dict filled when the block ends: other processes' CPU share, load averages, and the verdict."""
    record: dict = {"load_average_before": _load_average()}
    wall, busy, own = time.monotonic(), _busy_seconds(), _own_seconds()
    yield record
    elapsed = max(time.monotonic() - wall, 1e-6)
    cores = psutil.cpu_count() or 1
    others = max(0.0, (_busy_seconds() - busy) - (_own_seconds() - own))
    share = min(1.0, others / (elapsed * cores))
    record.update(load_average_after=_load_average(), cores=cores, other_cpu_share=round(share, 3),
                  under_load=share > BUSY_SHARE)


def load_note(record: dict) -> str | None:
    """The run's note when its timings were taken under load, else None."""
    if not record.get("under_load"):
        return None
    return (f"timed while other processes used {record['other_cpu_share'] * 100:.0f}% of the "
            f"{record['cores']} cores (load average {record.get('load_average_after')}): these timings "
            "may be slower and noisier than on an idle machine; build again with --force when it is idle")
