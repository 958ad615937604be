"""The runs table as the CLI prints it: a few columns, fixed decimals, the recommended run marked."""

from __future__ import annotations

import pandas as pd


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
        "file MB": frame["file_mb"].map(_mb),
        "RSS MB": frame["engine_rss_mb"].map(_mb),
        "status": frame["status"],
    })
    return shown.to_string(index=False)


def _task_cell(row) -> str:
    """'detections_kept 0.340 [0.3012, 0.3811] on 412 detections MISSES >= 0.95': the task's measure, how sure
    it is and whether the budget holds (the interval cell and the flag come from ``tasks.verdict_text``)."""
    if row.task_metric is None or pd.isna(row.task_value):
        return "n/a"
    interval = f" {row.task_interval}" if isinstance(row.task_interval, str) and row.task_interval else ""
    return f"{row.task_metric} {row.task_value:.3f}{interval} {row.verdict} >= {row.task_threshold:.3g}"


def _mb(value: float | None) -> str:
    """Megabytes of a file or of an engine's resident memory: 'n/a' for runs stored before they were measured."""
    return "n/a" if value is None or pd.isna(value) else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value * 100:.2f}%"
