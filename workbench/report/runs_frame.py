"""Runs as one pandas frame: the table the CLI prints, the report shows and CSV/Parquet export."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from workbench.runs.run import Run
from workbench.runs.store import missing_files
from workbench.runs.sweep import accuracy_loss

COLUMNS = [
    "run_id", "model", "variant", "precision", "prune_method", "prune_ratio", "batch", "backend",
    "latency_ms", "latency_p90_ms", "reference_ms", "speedup", "accuracy", "reference_accuracy",
    "accuracy_loss_pts", "loss_basis", "top1_agreement", "max_abs_error", "cosine_similarity",
    "status", "created",
]


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run; ``status`` is 'ok' or 'missing: <what>' when files vanished from disk."""
    rows = []
    for run in runs:
        drift = run.drift
        loss, basis = accuracy_loss(drift)
        gone = missing_files(run)
        rows.append({
            "run_id": run.run_id,
            "model": run.spec.model_name,
            "variant": run.label,
            "precision": run.spec.precision,
            "prune_method": run.spec.prune_method,
            "prune_ratio": run.spec.prune_ratio,
            "batch": run.spec.batch,
            "backend": run.spec.backend,
            "latency_ms": run.latency_ms.get("median"),
            "latency_p90_ms": run.latency_ms.get("p90"),
            "reference_ms": run.reference_latency_ms.get("median"),
            "speedup": run.speedup,
            "accuracy": drift.get("accuracy"),
            "reference_accuracy": drift.get("reference_accuracy"),
            "accuracy_loss_pts": loss,
            "loss_basis": basis,
            "top1_agreement": drift.get("top1_agreement"),
            "max_abs_error": drift.get("max_abs_error"),
            "cosine_similarity": drift.get("cosine_similarity"),
            "status": f"missing: {', '.join(gone)}" if gone else "ok",
            "created": pd.Timestamp(run.created, unit="s"),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def format_table(frame: pd.DataFrame, marked: str | None = None) -> str:
    """The human table: a few columns, fixed decimals, ``*`` beside the ``marked`` run id."""
    if frame.empty:
        return "(no runs)"
    shown = pd.DataFrame({
        "": ["*" if rid == marked else "" for rid in frame["run_id"]],
        "run_id": frame["run_id"],
        "model": frame["model"],
        "variant": frame["variant"],
        "latency ms": frame["latency_ms"].map("{:.3f}".format),
        "speed-up": frame["speedup"].map("{:.2f}x".format),
        "accuracy": frame["accuracy"].map(_pct),
        "loss pts": frame["accuracy_loss_pts"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}"),
        "top-1 agree": frame["top1_agreement"].map(_pct),
        "status": frame["status"],
    })
    return shown.to_string(index=False)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value * 100:.2f}%"
