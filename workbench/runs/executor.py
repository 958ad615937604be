"""The executor a sweep or tune hands its trials to: each trial is one build through the pipeline.

``LocalExecutor`` runs them one after another in this process, as the workbench always has. A
cluster executor runs each trial once per hardware class on a node of that class; both yield one
``TrialOutcome`` per trial and target as it ends, so the caller's loop is the same either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from workbench.build_options import BuildOptions
from workbench.errors import Busy, Cancelled, WorkbenchError
from workbench.progress import CancelToken, ProgressCallback, ProgressEvent
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run


@dataclass(frozen=True)
class Trial:
    """One build to make: a human label (the sweep's cell) and its options."""

    label: str
    options: BuildOptions


@dataclass
class TrialOutcome:
    """How one trial ended on one target: its run, or the reason it failed."""

    index: int
    label: str
    run: Run | None = None
    error: str | None = None
    #: The hardware class it ran on; None on this machine.
    target: str | None = None

    @property
    def name(self) -> str:
        return f"{self.label} on {self.target}" if self.target else self.label


class Executor(Protocol):
    """Runs trials of one model and yields their outcomes as they end; raises Cancelled when cancelled."""

    #: The hardware classes trials run on; empty for this machine.
    targets: Sequence[str]

    def run_trials(self, model: str, trials: Sequence[Trial], pipeline: Pipeline,
                   progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> Iterator[TrialOutcome]: ...


class LocalExecutor:
    """Every trial in this process, in order: the pipeline's own store serves finished ones again."""

    targets: Sequence[str] = ()

    def run_trials(self, model: str, trials: Sequence[Trial], pipeline: Pipeline,
                   progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> Iterator[TrialOutcome]:
        for index, trial in enumerate(trials):
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                run = pipeline.run(model, trial.options, cancel=cancel,
                                   progress=trial_progress(progress, index, len(trials), trial.label))
            except (Cancelled, Busy):
                raise
            except WorkbenchError as exc:
                yield TrialOutcome(index, trial.label, error=str(exc))
                continue
            yield TrialOutcome(index, trial.label, run=run)


def trial_progress(callback: ProgressCallback | None, index: int, count: int, label: str) -> ProgressCallback | None:
    """Map one trial's 0..1 onto its share of the whole set, and name the trial in the message."""
    if callback is None:
        return None

    def report(event: ProgressEvent) -> None:
        callback(ProgressEvent(event.step, (index + event.fraction) / count,
                               f"[{index + 1}/{count} {label}] {event.message}"))

    return report
