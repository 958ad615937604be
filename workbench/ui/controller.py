"""Runs one pipeline build at a time on a background thread, so the kernel stays free meanwhile.

The controller knows nothing about widgets: it hands progress events and the finished run (or the
error) to callbacks, which the panels turn into widget updates. ipywidgets 8 accepts trait changes
from any thread, so the callbacks may touch widgets directly.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workbench.analysis.profile_run import load_layer_table, profile_run
from workbench.errors import WorkbenchError
from workbench.progress import CancelToken, Progress, ProgressCallback, ProgressEvent
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run


@dataclass
class Outcome:
    """How a build ended: a run, or an error with the sentence to show (and a traceback if unexpected)."""

    run: Run | None = None
    error: BaseException | None = None
    message: str = ""
    details: str = ""
    warning: str = ""

    @property
    def ok(self) -> bool:
        return self.run is not None


def explain(exc: BaseException) -> str:
    """The one line a person reads: WorkbenchErrors already say what to do; anything else is a bug."""
    if isinstance(exc, WorkbenchError):
        return str(exc)
    first = str(exc).splitlines()[0] if str(exc) else ""
    return (f"Unexpected {type(exc).__name__}: {first}. This is a bug in the workbench, not in your input; "
            "the details are in the build log below.")


class BuildController:
    """Starts builds on a worker thread; a second start while one runs is refused, not queued."""

    def __init__(
        self,
        pipeline: Pipeline,
        on_progress: Callable[[ProgressEvent], None],
        on_finish: Callable[[Outcome], None],
    ) -> None:
        self.pipeline = pipeline
        self.on_progress = on_progress
        self.on_finish = on_finish
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._token: CancelToken | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, model: str, profile_layers: bool = True, **options: Any) -> bool:
        """Begin a build (and its layer profile); False, and nothing started, when one is running."""
        with self._guard:
            if self.busy:
                return False
            self._token = CancelToken()
            self._thread = threading.Thread(target=self._work, args=(model, profile_layers, options, self._token),
                                            name="workbench-build", daemon=True)
            self._thread.start()
            return True

    def cancel(self) -> None:
        """Ask the running build to stop at its next progress report."""
        if self._token is not None:
            self._token.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current build ends (for scripts and tests); True when nothing is running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    def _work(self, model: str, profile_layers: bool, options: dict[str, Any], token: CancelToken) -> None:
        progress = Progress(self.on_progress, token)
        try:
            run = self.pipeline.run(model, progress=_forward(progress.slice(0.0, 0.8 if profile_layers else 1.0)),
                                    cancel=token, **options)
            outcome = Outcome(run=run)
        except Exception as exc:  # every failure reaches the panel; none may kill the thread silently
            self.on_finish(_failed(exc))
            return
        if profile_layers and load_layer_table(run) is None:
            try:
                profile_run(run, eval=options.get("eval"), warmup=3, repeats=options.get("repeats", 30),
                            pipeline=self.pipeline, progress=_forward(progress.slice(0.8, 1.0)), cancel=token)
            except Exception as exc:  # the run itself is saved; only its layer table is missing
                outcome.warning = f"The build is saved, but its layer profile failed: {explain(exc)}"
                outcome.details = "" if isinstance(exc, WorkbenchError) else traceback.format_exc()
        self.on_finish(outcome)


def _failed(exc: Exception) -> Outcome:
    details = "" if isinstance(exc, WorkbenchError) else traceback.format_exc()
    return Outcome(error=exc, message=explain(exc), details=details)


def _forward(progress: Progress) -> ProgressCallback:
    """Re-report a nested step's events on a slice of the whole bar."""
    return lambda event: progress.report(event.step, event.fraction, event.message)
