"""The runs table as the CLI prints it: a few columns through the shared formatter, the recommended run marked."""

from __future__ import annotations

import pandas as pd

from workbench.runs.format import shown_table, target_columns

#: The runs-frame columns the CLI prints (the names and digits come from ``workbench.runs.format``).
COLUMNS = ["run_id", "model", "label", "backend", "latency_ms", "reference_ms", "speedup", "baseline_backend",
           "speedup_vs_baseline", "speedup_interval", "accuracy", "accuracy_loss_pts", "top1_agreement", "task_metric",
           "task_value", "task_interval", "task_threshold", "file_mb", "engine_rss_mb", "status"]


def format_table(frame: pd.DataFrame, marked: str | None = None) -> str:
    """The human table: fixed columns and digits, ``*`` beside the ``marked`` run id; the hardware class (and node)
    after the backend where the runs were timed on more than one target."""
    if frame.empty:
        return "(no runs)"
    at = COLUMNS.index("backend") + 1
    shown = shown_table(frame, [*COLUMNS[:at], *target_columns(frame), *COLUMNS[at:]])
    shown.insert(0, "", ["*" if rid == marked else "" for rid in frame["run_id"]])
    return shown.to_string(index=False)
