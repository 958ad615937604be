"""Runs -> the analysis package's frames -> its plot functions: one function per plot slot.

Nothing here draws: each function gathers the frames a plot needs from the chosen runs and
calls the one plot function in ``workbench.analysis.plots`` that draws it, or returns the
sentence to show instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

import pandas as pd
import plotly.graph_objects as go

from workbench.analysis.profile_run import load_layer_table
from workbench.runs.run import Run

FigureOrReason = go.Figure | str


def _analysis(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"workbench.analysis.{module}")
    except ImportError:
        return None


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run, the same table the CLI and the report show."""
    rows = [{
        "run": r.label,
        "precision": r.spec.precision,
        "batch": r.spec.batch,
        "latency_ms": r.latency_ms.get("median"),
        "fp32_ms": r.reference_latency_ms.get("median"),
        "speedup": r.speedup,
        "top1_agreement": r.drift.get("top1_agreement"),
        "accuracy": r.drift.get("accuracy"),
        "cosine": r.drift.get("cosine_similarity"),
        "run_id": r.run_id[:8],
    } for r in runs]
    return pd.DataFrame(rows)


def layer_timing(runs: Sequence[Run]) -> FigureOrReason:
    plots = _analysis("plots")
    if plots is None:
        return "The layer timing plot appears once workbench.analysis.plots is installed."
    frames = {r.label: table for r in runs if (table := load_layer_table(r)) is not None}
    if not frames:
        return "None of the chosen runs has a layer profile: build with 'Profile layers' ticked."
    return plots.layers_across_variants(frames)


def drift(runs: Sequence[Run]) -> FigureOrReason:
    plots = _analysis("plots")
    if plots is None:
        return "The drift plot appears once workbench.analysis.plots is installed."
    return plots.drift_figure(runs_frame(runs))


def pareto(runs: Sequence[Run]) -> FigureOrReason:
    plots = _analysis("plots")
    if plots is None:
        return "The latency-vs-drift plot appears once workbench.analysis.plots is installed."
    if not runs:
        return "No runs yet."
    return plots.pareto_figure(runs_frame(runs))
