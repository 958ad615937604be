"""One error family for everything a user can get wrong.

Every message names the problem and what to do about it, because the same text is shown in the
CLI's single stderr line and in the widgets' error panel; tracebacks are for ``--debug`` only.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A problem the user can fix; ``str()`` is a complete, one-line explanation."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} {fix}" if fix else problem)


class ModelError(WorkbenchError):
    """The model file cannot be used: not ONNX, corrupt, unsafe or unsupported."""


class DataError(WorkbenchError):
    """Calibration or evaluation data does not fit the model."""


class BuildError(WorkbenchError):
    """A variant could not be produced, even after the fall-backs were tried."""


class BackendUnavailable(WorkbenchError):
    """The chosen backend cannot run on this machine; the message says how to get it."""


class Cancelled(WorkbenchError):
    """The user cancelled a long step; nothing half-written is kept."""


class Busy(WorkbenchError):
    """A build is already running; a second one would fight it for the CPU and the cache."""
