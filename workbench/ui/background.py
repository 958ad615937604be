"""One pipeline job at a time on a daemon thread, ending in an outcome a panel can show.

Builds, searches and sweeps share this, so all of them keep the kernel free, stop the same way
and report a failure the same way: the panels never see an exception, only an outcome.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from workbench.errors import WorkbenchError
from workbench.messages import library_message
from workbench.progress import CancelToken, ProgressEvent
from workbench.runs.pipeline import Pipeline


def explain(exc: BaseException) -> str:
    """The one line a person reads: WorkbenchErrors already say what to do; anything else is a bug."""
    if isinstance(exc, WorkbenchError):
        return str(exc)
    return (f"Unexpected {type(exc).__name__}: {library_message(exc)}. This is a bug in the workbench, "
            "not in your input; the details are in the build log below.")


OutcomeT = TypeVar("OutcomeT", bound="JobOutcome")


@dataclass(kw_only=True)
class JobOutcome:
    """What every job's outcome carries when it failed: the error, the sentence to show, a traceback if unexpected."""

    error: BaseException | None = None
    message: str = ""
    details: str = ""

    @classmethod
    def failed(cls: type[OutcomeT], exc: Exception) -> OutcomeT:
        """The outcome of a job that raised ``exc``; call it while handling ``exc``, for the traceback."""
        details = "" if isinstance(exc, WorkbenchError) else traceback.format_exc()
        return cls(error=exc, message=explain(exc), details=details)


class BackgroundJob(Generic[OutcomeT]):
    """Runs one job at a time with its own cancel token; a second start is refused, not queued.

    A subclass names its ``outcome`` type and starts its work through ``_launch``.
    """

    outcome: type[OutcomeT]

    def __init__(self, pipeline: Pipeline, on_progress: Callable[[ProgressEvent], None],
                 on_finish: Callable[[OutcomeT], None]) -> None:
        self.pipeline = pipeline
        self.on_progress = on_progress
        self.on_finish = on_finish
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._token: CancelToken | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _launch(self, name: str, work: Callable[..., OutcomeT], *args: Any) -> bool:
        """Run ``work(*args, token)`` on a new thread and hand its outcome to ``on_finish``; False when busy."""
        with self._guard:
            if self.busy:
                return False
            self._token = CancelToken()
            self._thread = threading.Thread(target=self._finish, args=(work, *args, self._token), name=name,
                                            daemon=True)
            self._thread.start()
            return True

    def _finish(self, work: Callable[..., OutcomeT], *args: Any) -> None:
        try:
            outcome = work(*args)
        except Exception as exc:  # every failure reaches the panel; none may kill the thread silently
            outcome = self.outcome.failed(exc)
        self.on_finish(outcome)

    def cancel(self) -> None:
        """Ask the running job to stop at its next progress report."""
        if self._token is not None:
            self._token.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current job ends (for scripts and tests); True when nothing is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy
