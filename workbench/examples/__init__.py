"""Example data shipped with the package, so the notebooks that read it run in any clone or install."""

from __future__ import annotations

import os
from pathlib import Path

TRTEXEC_ENV = "WORKBENCH_TRTEXEC_DATA"


def trtexec_exports() -> Path:
    """The folder of trtexec exports to explore: ``$WORKBENCH_TRTEXEC_DATA`` if set, else the shipped examples."""
    chosen = os.environ.get(TRTEXEC_ENV)
    return Path(chosen) if chosen else Path(__file__).parent / "trtexec"
