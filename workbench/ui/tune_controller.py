"""Runs ``workbench tune``'s search on a background thread for the Build panel's "Find the fastest" button."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.progress import CancelToken, ProgressEvent
from workbench.runs.pipeline import Pipeline
from workbench.ui.controller import BackgroundJob, explain
from workbench.workflows.tune import TuneResult, tune


@dataclass
class TuneOutcome:
    result: TuneResult | None = None
    error: BaseException | None = None
    message: str = ""
    details: str = ""


class TuneController(BackgroundJob):
    def __init__(self, pipeline: Pipeline, on_progress: Callable[[ProgressEvent], None],
                 on_finish: Callable[[TuneOutcome], None]) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.on_progress = on_progress
        self.on_finish = on_finish

    def start(self, model: str, options: BuildOptions, time_budget: float,
              backends: Sequence[str] | None = None) -> bool:
        return self._launch("workbench-tune", self._work, model, options, time_budget, backends)

    def _work(self, model: str, options: BuildOptions, time_budget: float, backends: Sequence[str] | None,
              token: CancelToken) -> None:
        try:
            result = tune(model, options, backends=backends, time_budget=time_budget, pipeline=self.pipeline,
                          progress=self.on_progress, cancel=token)
        except Exception as exc:  # every failure reaches the panel
            details = "" if isinstance(exc, WorkbenchError) else traceback.format_exc()
            self.on_finish(TuneOutcome(error=exc, message=explain(exc), details=details))
            return
        self.on_finish(TuneOutcome(result=result))
