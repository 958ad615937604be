"""The runs table with what a history and a report add: the accuracy lost, the reference and missing files.

The analysis module owns the runs table itself; this adds only the columns the sweep's budget,
the Pareto plot and ``workbench runs`` need, matched by run id.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from workbench.analysis.runs_table import runs_frame as analysis_runs_frame
from workbench.runs.run import Run
from workbench.runs.store import missing_files
from workbench.runs.sweep import accuracy_loss


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run, oldest first; ``status`` is 'ok' or 'missing: <what>' when files vanished."""
    frame = analysis_runs_frame(runs)
    extra = {}
    for run in runs:
        loss, basis = accuracy_loss(run.drift)
        gone = missing_files(run)
        extra[run.run_id] = {
            "reference_ms": run.reference_latency_ms.get("median"),
            "reference_accuracy": run.drift.get("reference_accuracy"),
            "accuracy_loss_pts": loss,
            "loss_basis": basis,
            "status": f"missing: {', '.join(gone)}" if gone else "ok",
            "baseline_ms": (run.baseline_latency_ms or {}).get("median", run.reference_latency_ms.get("median")),
            "speedup_vs_baseline": run.comparable_speedup,
        }
    added = pd.DataFrame.from_dict(extra, orient="index", columns=[
        "reference_ms", "reference_accuracy", "accuracy_loss_pts", "loss_basis", "status", "baseline_ms",
        "speedup_vs_baseline"])
    for column in ("reference_ms", "reference_accuracy", "accuracy_loss_pts", "baseline_ms", "speedup_vs_baseline"):
        added[column] = pd.to_numeric(added[column], errors="coerce")
    return frame.join(added, on="run_id")


def format_table(frame: pd.DataFrame, marked: str | None = None) -> str:
    """The human table: a few columns, fixed decimals, ``*`` beside the ``marked`` run id."""
    if frame.empty:
        return "(no runs)"
    shown = pd.DataFrame({
        "": ["*" if rid == marked else "" for rid in frame["run_id"]],
        "run_id": frame["run_id"],
        "model": frame["model"],
        "variant": frame["label"],
        "latency ms": frame["latency_ms"].map("{:.3f}".format),
        "backend": frame["backend"],
        "speed-up": frame["speedup"].map("{:.2f}x".format),
        "vs baseline": frame["speedup_vs_baseline"].map("{:.2f}x".format),
        "accuracy": frame["accuracy"].map(_pct),
        "loss pts": frame["accuracy_loss_pts"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}"),
        "top-1 agree": frame["top1_agreement"].map(_pct),
        "task metric": [_task_cell(row) for row in frame.itertuples()],
        "status": frame["status"],
    })
    return shown.to_string(index=False)


def _task_cell(row) -> str:
    """'detections_kept 0.340 MISSES >= 0.95': the task's measure and whether the budget holds."""
    if row.task_metric is None or pd.isna(row.task_value):
        return "n/a"
    verdict = "BROKEN" if row.broken else ("ok" if row.meets_budget else "MISSES")
    return f"{row.task_metric} {row.task_value:.3f} {verdict} >= {row.task_threshold:.3g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value * 100:.2f}%"
