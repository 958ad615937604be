"""Build, then explain: the run, its layer profile and its per-layer drift, saved together.

The Build button, ``Workbench.run`` and Python callers all go through ``build_and_analyse``. The
build's own errors raise; an analysis that fails afterwards is reported and the saved run is kept,
since a finished measurement is worth more than a missing plot.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.messages import library_message
from workbench.progress import CancelToken, Progress, ProgressCallback
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.runs.saved_tables import LAYER_DRIFT, load_run_table, save_run_table
from workbench.workflows.layer_drift import drift_for_run
from workbench.workflows.profile import load_layer_table, profile_run

#: Warm-up runs of the layer profile after a build: the build's own timing has warmed the caches.
PROFILE_WARMUP = 3


@dataclass
class Analysed:
    """The saved run, and for each analysis that failed one sentence (and a traceback if unexpected)."""

    run: Run
    warnings: list[str] = field(default_factory=list)
    details: str = ""


def build_and_analyse(
    model: str | Path,
    options: BuildOptions | None = None,
    *,
    profile_layers: bool = True,
    layer_drift: bool = True,
    pipeline: Pipeline | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Analysed:
    """Build (or fetch) the run, then its layer table and, unless it is exact, its per-layer drift."""
    options = options or BuildOptions()
    pipeline = pipeline or Pipeline()
    outer = Progress(progress, cancel)
    share = 1.0 - 0.2 * (profile_layers + layer_drift)
    run = pipeline.run(model, options, progress=outer.slice(0.0, share).as_callback(), cancel=outer.cancel)
    result = Analysed(run)
    if profile_layers and load_layer_table(run) is None:
        part = outer.slice(share, share + 0.2)
        share += 0.2
        _analysis(result, "layer profile", lambda: profile_run(
            run, options.replace(warmup=PROFILE_WARMUP), pipeline=pipeline, progress=part.as_callback(),
            cancel=outer.cancel))
    if layer_drift and not run.spec.exact and load_run_table(run, LAYER_DRIFT) is None:
        part = outer.slice(share, share + 0.2)
        _analysis(result, "per-layer drift", lambda: save_run_table(
            run, LAYER_DRIFT, drift_for_run(run, options.eval, pipeline=pipeline, progress=part.as_callback(),
                                            cancel=outer.cancel).table, pipeline.workspace))
    return result


def _analysis(result: Analysed, what: str, step: Callable[[], object]) -> None:
    try:
        step()
    except Exception as exc:  # the run is saved; the failed analysis is reported, not raised
        if isinstance(exc, WorkbenchError):
            reason = str(exc)
        else:
            reason = f"unexpected {type(exc).__name__}: {library_message(exc)}"
            result.details = traceback.format_exc()
        result.warnings.append(f"The build is saved, but its {what} failed: {reason}")
