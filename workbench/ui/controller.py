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

from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.progress import CancelToken, ProgressEvent
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.workflows.build import build_and_analyse


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


class BackgroundJob:
    """One job at a time on a daemon thread with its own cancel token; a second start is refused, not queued.

    Builds and sweeps share this, so both keep the kernel free and stop the same way.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._token: CancelToken | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _launch(self, name: str, target: Callable[..., None], *args: Any) -> bool:
        """Start ``target(*args, token)`` on a new thread; False when a job is still running."""
        with self._guard:
            if self.busy:
                return False
            self._token = CancelToken()
            self._thread = threading.Thread(target=target, args=(*args, self._token), name=name, daemon=True)
            self._thread.start()
            return True

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


class BuildController(BackgroundJob):
    """Starts builds, then their layer profile and per-layer drift, on a worker thread."""

    def __init__(
        self,
        pipeline: Pipeline,
        on_progress: Callable[[ProgressEvent], None],
        on_finish: Callable[[Outcome], None],
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.on_progress = on_progress
        self.on_finish = on_finish

    def start(self, model: str, options: BuildOptions, profile_layers: bool = True, layer_drift: bool = True) -> bool:
        """Begin a build, then its layer profile and per-layer drift; False when one is running."""
        extras = {"profile_layers": profile_layers, "layer_drift": layer_drift}
        return self._launch("workbench-build", self._work, model, extras, options)

    def _work(self, model: str, extras: dict[str, bool], options: BuildOptions, token: CancelToken) -> None:
        try:
            built = build_and_analyse(model, options, pipeline=self.pipeline, progress=self.on_progress,
                                      cancel=token, **extras)
        except Exception as exc:  # every failure reaches the panel; none may kill the thread silently
            self.on_finish(_failed(exc))
            return
        self.on_finish(Outcome(run=built.run, warning=" ".join(built.warnings), details=built.details))


def _failed(exc: Exception) -> Outcome:
    details = "" if isinstance(exc, WorkbenchError) else traceback.format_exc()
    return Outcome(error=exc, message=explain(exc), details=details)
