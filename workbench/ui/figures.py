"""Runs -> the analysis package's frames -> its plot functions: one function per plot slot.

Nothing here draws or measures: each function gathers the frames a plot needs from the chosen
runs and calls the one function in ``workbench.plots`` that draws them, or returns the
sentence to show instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from workbench import plots
from workbench.runs.format import CELLS, shown_table
from workbench.runs.frame import runs_frame
from workbench.runs.run import Run
from workbench.runs.saved_tables import LAYER_DRIFT, load_run_table
from workbench.workflows.profile import load_layer_table

FigureOrReason = go.Figure | str

#: Columns the Results tab shows, in order (the full table is ``runs_frame``; reports and CSVs keep all).
SHOWN_COLUMNS = ["label", "precision", "prune_method", "prune_ratio", "batch", "backend", "latency_ms",
                 "latency_p90_ms", "reference_ms", "speedup", "speedup_spread", "baseline_backend",
                 "speedup_vs_baseline", "speedup_interval", "accuracy", "top1_agreement", "cosine", "max_abs_error",
                 "task_metric", "task_value", "task_interval", "task_threshold", "file_mb", "reference_file_mb",
                 "engine_rss_mb", "reference_rss_mb", "status", "kept_fp32", "created", "run_id"]
#: Shown column name -> the runs-frame column it is sorted by (sorting the numbers, not their text); the speed-up's
#: interval, a pair, is not a sort key (sort by the figure it is of).
SORT_KEYS = {CELLS[column][0]: column for column in SHOWN_COLUMNS if column != "speedup_interval"}


def table_frame(runs: Sequence[Run], sort_by: str | None = None, descending: bool = False) -> pd.DataFrame:
    """The runs table as shown: human column names with units, every cell written by the shared formatter
    (``workbench.runs.format``), short ids; sorted by the underlying numbers of ``sort_by``'s column."""
    frame = runs_frame(runs)
    if sort_by in SORT_KEYS:
        frame = frame.sort_values(SORT_KEYS[sort_by], ascending=not descending, kind="stable")
    shown = shown_table(frame, SHOWN_COLUMNS)
    shown["run"] = shown["run"].str[:8]
    return shown


def layer_timing(runs: Sequence[Run]) -> FigureOrReason:
    """One run: its slowest layers; two or more: the same layers side by side."""
    tables = {r.label: table for r in runs if (table := load_layer_table(r)) is not None}
    if not tables:
        return "None of the chosen runs has a layer profile: build with 'Profile layers' ticked."
    if len(tables) == 1:
        label, table = next(iter(tables.items()))
        return plots.top_layers(table, title=f"Slowest layers: {label}")
    precisions = {r.label: r.spec.precision for r in runs if r.label in tables}
    return plots.compare_layers(tables, precisions=precisions)


def drift(runs: Sequence[Run]) -> FigureOrReason:
    """Per-layer drift of the first chosen run that has it (the newest build comes first)."""
    for run in runs:
        table = load_run_table(run, LAYER_DRIFT)
        if table is not None:
            return plots.drift_along_graph(table, title=f"Per-layer drift: {run.label}")
    if runs and all(r.spec.precision == "fp32" and not r.spec.prune_method for r in runs):
        return "FP32 runs match the reference exactly: build a lower precision to see where drift comes from."
    return "None of the chosen runs has a per-layer drift table: build with 'Per-layer drift' ticked."


def pareto(runs: Sequence[Run]) -> FigureOrReason:
    if not runs:
        return "No runs yet."
    frame = runs_frame(runs)
    return plots.latency_vs_drift(frame, drift=plots.task_drift_column(frame))
