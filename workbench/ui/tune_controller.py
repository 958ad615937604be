"""Runs ``workbench tune``'s search on a background thread for the Build panel's "Find the fastest" button."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workbench.build_options import BuildOptions
from workbench.progress import CancelToken
from workbench.ui.background import BackgroundJob, JobOutcome
from workbench.workflows.tune import TuneResult, tune


@dataclass(kw_only=True)
class TuneOutcome(JobOutcome):
    result: TuneResult | None = None


class TuneController(BackgroundJob[TuneOutcome]):
    outcome = TuneOutcome

    def start(self, model: str, options: BuildOptions, time_budget: float,
              backends: Sequence[str] | None = None, search_samples: int | None = None) -> bool:
        return self._launch("workbench-tune", self._work, model, options, time_budget, backends, search_samples)

    def _work(self, model: str, options: BuildOptions, time_budget: float, backends: Sequence[str] | None,
              search_samples: int | None, token: CancelToken) -> TuneOutcome:
        return TuneOutcome(result=tune(model, options, backends=backends, time_budget=time_budget,
                                       search_samples=search_samples, pipeline=self.pipeline,
                                       progress=self.on_progress, cancel=token))
