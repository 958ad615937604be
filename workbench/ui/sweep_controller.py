"""Runs one sweep at a time on a background thread, through the app's single Pipeline.

Like the build controller it knows nothing about widgets: each finished cell, each progress event
and the end of the sweep go to callbacks, which the Sweep panel turns into table rows and text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from workbench.progress import CancelToken, ProgressEvent
from workbench.runs.executor import Executor
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.runs.sweep import Sweep, SweepResult
from workbench.ui.background import BackgroundJob, JobOutcome


@dataclass(kw_only=True)
class SweepOutcome(JobOutcome):
    """How a sweep ended: its result, or the error (cancel included) with the sentence to show."""

    result: SweepResult | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


class SweepController(BackgroundJob[SweepOutcome]):
    """Starts ``Sweep.run`` on a worker thread; cells already finished stay saved whatever happens next."""

    outcome = SweepOutcome

    def __init__(
        self,
        pipeline: Pipeline,
        on_progress: Callable[[ProgressEvent], None],
        on_run: Callable[[Run, bool], None],
        on_finish: Callable[[SweepOutcome], None],
    ) -> None:
        super().__init__(pipeline, on_progress, on_finish)
        self.on_run = on_run

    def start(self, sweep: Sweep, executor: Executor | None = None) -> bool:
        """Begin the sweep (on a cluster with a RayExecutor); False when one is already running."""
        return self._launch("workbench-sweep", self._work, sweep, executor)

    def _work(self, sweep: Sweep, executor: Executor | None, token: CancelToken) -> SweepOutcome:
        try:
            return SweepOutcome(result=sweep.run(self.pipeline, self.on_progress, token, self.on_run, executor))
        finally:
            close = getattr(executor, "close", None)
            if close is not None:
                close()
