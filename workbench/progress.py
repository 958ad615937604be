"""Progress reporting and cancellation shared by every long step.

One callback type and one token travel through the whole pipeline so the CLI, the widgets and
scripts observe and stop a build the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from workbench.errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    """One report: which step, how far through the whole build (0..1), and a human line."""

    step: str
    fraction: float
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Thread-safe flag; long steps poll it between units of work (a batch, a repeat)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("The build was cancelled.", "Nothing from it was kept; start it again when ready.")


class Progress:
    """Maps each step's own 0..1 progress onto a slice of the whole build's bar."""

    def __init__(
        self,
        callback: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        start: float = 0.0,
        end: float = 1.0,
    ) -> None:
        self.callback = callback
        self.cancel = cancel or CancelToken()
        self.start = start
        self.end = end

    def report(self, step: str, fraction: float = 0.0, message: str = "") -> None:
        """Report progress within this slice and stop here if the user cancelled."""
        self.cancel.raise_if_cancelled()
        if self.callback is not None:
            overall = self.start + (self.end - self.start) * min(max(fraction, 0.0), 1.0)
            self.callback(ProgressEvent(step, overall, message))

    def slice(self, start: float, end: float) -> Progress:
        """A child reporter covering [start, end] of this one's range."""
        span = self.end - self.start
        return Progress(self.callback, self.cancel, self.start + span * start, self.start + span * end)

    def as_callback(self) -> ProgressCallback:
        """A plain callback for an API that makes its own Progress: its events land in this slice."""
        return lambda event: self.report(event.step, event.fraction, event.message)
