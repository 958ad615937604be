"""How much memory a heavy step may use, and the one sentence that says what would fit.

The target is a workshop laptop: a build's peak RSS stays under ``WORKBENCH_MEMORY_GB`` (default
4 GB) or what the machine has free, whichever is less. Steps measure what one sample costs (a
sample run through the session, watching the process's resident memory and the outputs it
returns), then pick a batch that fits, or refuse before starting rather than swap or be killed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

import psutil

DEFAULT_TARGET_GB = 4.0
#: Kept back for the interpreter, libraries and the other engine that runs beside this one.
HEADROOM = 0.15


def target_bytes() -> int:
    try:
        gigabytes = float(os.environ.get("WORKBENCH_MEMORY_GB", DEFAULT_TARGET_GB))
    except ValueError:
        gigabytes = DEFAULT_TARGET_GB
    return int(gigabytes * 2**30)


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def available_bytes() -> int:
    """What a step may still allocate: the target less what this process holds, capped by free memory."""
    free = psutil.virtual_memory().available
    return max(0, int(min(target_bytes() - rss_bytes(), free) * (1 - HEADROOM)))


def per_sample_bytes(run_one, sample_bytes: int) -> int:
    """Bytes one sample costs: the growth of resident memory while ``run_one()`` runs plus what it returns."""
    before = rss_bytes()
    returned = run_one()
    grown = max(0, rss_bytes() - before)
    return max(grown + returned, sample_bytes)


def fits_text(advice: str) -> str:
    target = target_bytes() / 2**30
    return f"{advice}, or raise WORKBENCH_MEMORY_GB (now {target:g}) on a machine with more memory."


def release_freed() -> int:
    """Hand memory the process has freed back to the system; the bytes of resident memory it gave back.

    Engines closed and models dropped leave their pages in the C allocator's free lists, still counted in the
    process's resident set: after a search on a BERT-base encoder tune held 3.3 GB, most of it freed, so the
    run-off's engines did not fit beside it in 4 GB. glibc's ``malloc_trim`` returns those pages; elsewhere
    (no glibc) only Python's own collection runs.
    """
    before = rss_bytes()
    gc.collect()
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    return max(0, before - rss_bytes())
