"""Runs one pipeline build at a time on a background thread, so the kernel stays free meanwhile.

The controller knows nothing about widgets: it hands progress events and the finished run (or the
error) to callbacks, which the panels turn into widget updates. ipywidgets 8 accepts trait changes
from any thread, so the callbacks may touch widgets directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.build_options import BuildOptions
from workbench.progress import CancelToken
from workbench.runs.run import Run
from workbench.ui.background import BackgroundJob, JobOutcome
from workbench.workflows.build import build_and_analyse


@dataclass(kw_only=True)
class Outcome(JobOutcome):
    """How a build ended: a run (with any warning), or an error with the sentence to show."""

    run: Run | None = None
    warning: str = ""

    @property
    def ok(self) -> bool:
        return self.run is not None


class BuildController(BackgroundJob[Outcome]):
    """Starts builds, then their layer profile and per-layer drift, on a worker thread."""

    outcome = Outcome

    def start(self, model: str, options: BuildOptions, profile_layers: bool = True, layer_drift: bool = True) -> bool:
        """Begin a build, then its layer profile and per-layer drift; False when one is running."""
        extras = {"profile_layers": profile_layers, "layer_drift": layer_drift}
        return self._launch("workbench-build", self._work, model, extras, options)

    def _work(self, model: str, extras: dict[str, bool], options: BuildOptions, token: CancelToken) -> Outcome:
        built = build_and_analyse(model, options, pipeline=self.pipeline, progress=self.on_progress,
                                  cancel=token, **extras)
        return Outcome(run=built.run, warning=" ".join(built.warnings), details=built.details)
