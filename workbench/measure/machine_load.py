"""Whether the machine was busy while a run was timed, so a slow timing is not taken for a slow variant.

Measured over the timing window itself: the CPU time every process spent (``/proc/stat`` through
psutil) less this process's own, as a share of all cores, and the 1-minute load average before
and after. Another process's build, a test suite or a browser taking more than ``BUSY_SHARE`` of
the machine marks the run's timings as taken under load.

On a virtual machine the hypervisor may also hand the cores to another guest while this one wants
them ("steal" time). The load average does not show it, and it is not another process of this
machine: it is counted on its own (``steal_share``), and more than ``STEAL_SHARE`` of it marks the
timings too. Seen on a 2-core cloud machine: 25-50% steal while idle load averages read 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

#: Other processes using more than this share of all cores during timing make the timings suspect.
BUSY_SHARE = 0.25
#: The hypervisor taking more than this share of the cores from the machine during timing makes them suspect.
STEAL_SHARE = 0.10


def _steal_seconds() -> float:
    return getattr(psutil.cpu_times(), "steal", 0.0)  # Linux only; elsewhere no steal is reported


def _busy_seconds() -> float:
    """CPU time of every process of this machine: all but idle, waiting, the guests' (already in user) and steal."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return (sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
            - getattr(times, "steal", 0.0))


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
    """A dict filled when the block ends: other processes' CPU share, the hypervisor's steal share, load
    averages, and the verdict."""
    record: dict = {"load_average_before": _load_average()}
    wall, busy, own, steal = time.monotonic(), _busy_seconds(), _own_seconds(), _steal_seconds()
    yield record
    elapsed = max(time.monotonic() - wall, 1e-6)
    cores = psutil.cpu_count() or 1
    others = max(0.0, (_busy_seconds() - busy) - (_own_seconds() - own))
    share = min(1.0, others / (elapsed * cores))
    stolen = min(1.0, max(0.0, _steal_seconds() - steal) / (elapsed * cores))
    record.update(load_average_after=_load_average(), cores=cores, other_cpu_share=round(share, 3),
                  steal_share=round(stolen, 3), under_load=share > BUSY_SHARE or stolen > STEAL_SHARE)


def load_text(record: dict) -> str:
    """What the machine did besides the timing, for a table's caption: others' share, steal, load average."""
    return (f"other processes {record.get('other_cpu_share', 0.0) * 100:.0f}% and hypervisor steal "
            f"{record.get('steal_share', 0.0) * 100:.0f}% of the {record.get('cores')} cores, "
            f"load average {record.get('load_average_after')}")


def load_note(record: dict) -> str | None:
    """The run's note when its timings were taken under load, else None."""
    if not record.get("under_load"):
        return None
    return (f"timed while {load_text(record)}: these timings may be slower and noisier than on an idle machine; "
            "build again with --force when it is idle")
