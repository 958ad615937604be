"""Runs one sweep at a time on a background thread, through the app's single Pipeline.

Like the build controller it knows nothing about widgets: each finished cell, each progress event
and the end of the sweep go to callbacks, which the Sweep panel turns into table rows and text.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

from workbench.errors import WorkbenchError
from workbench.progress import CancelToken, ProgressEvent
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.runs.sweep import Sweep, SweepResult
from workbench.ui.controller import BackgroundJob, explain


@dataclass
class SweepOutcome:
    """How a sweep ended: its result, or the error (cancel included) with the sentence to show."""

    result: SweepResult | None = None
    error: BaseException | None = None
    message: str = ""
    details: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None


class SweepController(BackgroundJob):
    """Starts ``Sweep.run`` on a worker thread; cells already finished stay saved whatever happens next."""

    def __init__(
        self,
        pipeline: Pipeline,
        on_progress: Callable[[ProgressEvent], None],
        on_run: Callable[[Run, bool], None],
        on_finish: Callable[[SweepOutcome], None],
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.on_progress = on_progress
        self.on_run = on_run
        self.on_finish = on_finish

    def start(self, sweep: Sweep) -> bool:
        """Begin the sweep; False when one is already running."""
        return self._launch("workbench-sweep", self._work, sweep)

    def _work(self, sweep: Sweep, token: CancelToken) -> None:
        try:
            result = sweep.run(self.pipeline, self.on_progress, token, self.on_run)
        except Exception as exc:  # every failure reaches the panel; none may kill the thread silently
            details = "" if isinstance(exc, WorkbenchError) else traceback.format_exc()
            self.on_finish(SweepOutcome(error=exc, message=explain(exc), details=details))
            return
        self.on_finish(SweepOutcome(result=result))
