"""A full disk named as such, whichever library tripped over it first.

ONNX Runtime's and ONNX's writers do not always raise ``ENOSPC``: some log it and leave a truncated
file that the next step fails to parse ("Failed to find proper ai.onnx domain"). So a build that
fails while its file system has next to no space left is reported as a full disk.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import WorkbenchError

#: Less free space than this when a build fails, and the disk is the likely cause.
NEARLY_FULL_BYTES = 1 << 20


def disk_is_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


@contextmanager
def full_disk_named(folder: Path) -> Iterator[None]:
    """Turn a failure on a full file system into one sentence; checked before any cleanup frees space."""
    try:
        yield
    except WorkbenchError:
        raise
    except Exception as exc:
        if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or disk_is_full(folder):
            raise WorkbenchError(f"The disk holding the workspace '{folder}' is full, so the build stopped and "
                                 "nothing partial was kept;",
                                 "free some space there (workbench gc removes unused artifacts) and build again."
                                 ) from exc
        raise
