"""Runs as one DataFrame: the one runs table that the widgets, the CLI, the reports and sweeps show.

Beside the spec and the measurements it carries what a history needs: the FP32 reference time,
the accuracy lost against it (and on what basis), the run's own verdict, and whether the run's files
are still there. Every figure is a stored field of the run, copied, never recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from workbench.runs.recommend import accuracy_loss
from workbench.runs.run import TIMING_STOPPED, Run
from workbench.runs.store import missing_files
from workbench.tasks import TaskScore, task_score
from workbench.tasks.verdict_text import interval_cell, state_flag

RUN_COLUMNS = [
    "run_id", "model", "label", "precision", "prune_method", "prune_ratio", "batch", "backend",
    "hardware_class", "node",
    "latency_ms", "latency_p90_ms", "speedup", "speedup_spread", "accuracy", "top1_agreement", "cosine",
    "max_abs_error", "task", "task_metric", "task_value", "task_threshold", "meets_budget", "broken",
    "task_interval", "task_samples", "verdict",
    "kept_fp32", "created", "random_data", "reference_ms", "reference_accuracy", "accuracy_loss_pts", "loss_basis",
    "status", "baseline_backend", "baseline_ms", "speedup_vs_baseline", "speedup_interval", "file_mb",
    "reference_file_mb", "engine_rss_mb", "reference_rss_mb",
]


def runs_frame(runs: Sequence[Run], oldest_first: bool = True) -> pd.DataFrame:
    """One row per run, oldest first (else in the order given); missing metrics are NaN rather than absent columns.

    ``latency_ms`` and ``reference_ms`` are the run's own medians, timed in the same rounds, so
    ``reference_ms / latency_ms`` is its ``speedup``. ``verdict`` is the run's own task verdict ('ok',
    'MISSES', 'cannot tell', 'BROKEN', 'not judged'); ``status`` is that verdict, with 'missing: <what>' added when the
    run's files vanished and 'timing stopped early' where a search timed it for a few rounds only
    (``Run.timing_stopped_early``). ``speedup_vs_baseline`` is the cross-engine figure, against
    ``baseline_backend``'s FP32; empty for a run on that engine itself, whose ``speedup`` is that figure.
    """
    rows = []
    for run in runs:
        drift = run.drift or {}
        spec = run.spec
        score = task_score(drift)
        loss, basis = accuracy_loss(drift)
        gone = missing_files(run)
        rows.append({
            "run_id": run.run_id,
            "model": spec.model_name,
            "label": run.label,
            "precision": spec.precision,
            "prune_method": spec.prune_method,
            "prune_ratio": spec.prune_ratio,
            "batch": spec.batch,
            "backend": spec.backend,
            # Where it was timed on a cluster (None here): ratios compare only within one class.
            "hardware_class": spec.hardware_class,
            "node": (run.environment.get("node") or {}).get("name"),
            "latency_ms": run.latency_ms.get("median"),
            "latency_p90_ms": run.latency_ms.get("p90"),
            "speedup": run.speedup,
            "speedup_spread": run.speedup_spread,
            "accuracy": drift.get("accuracy"),
            "top1_agreement": drift.get("top1_agreement"),
            "cosine": drift.get("cosine_similarity"),
            "max_abs_error": drift.get("max_abs_error"),
            "task": score.task if score else None,
            "task_metric": score.metric if score else None,
            "task_value": score.value if score else None,
            "task_threshold": score.threshold if score else None,
            "meets_budget": score.met if score else None,
            "broken": score.broken if score else None,
            "task_interval": interval_cell(score.interval, score.samples, score.unit) if score else None,
            "task_samples": score.samples if score else None,
            "verdict": verdict(score),
            "kept_fp32": len(spec.exclude_nodes),
            "created": datetime.fromtimestamp(run.created),
            "random_data": bool(run.eval_source and run.eval_source.startswith("RANDOM")),
            "reference_ms": run.reference_latency_ms.get("median"),
            "reference_accuracy": drift.get("reference_accuracy"),
            "accuracy_loss_pts": loss,
            "loss_basis": basis,
            "status": verdict(score) + (f"; missing: {', '.join(gone)}" if gone else "")
            + (f"; {TIMING_STOPPED}" if run.timing_stopped_early else ""),
            "baseline_backend": run.baseline_backend if run.cross_engine else None,
            "baseline_ms": (run.baseline_latency_ms or {}).get("median") if run.cross_engine else None,
            "speedup_vs_baseline": run.speedup_vs_baseline if run.cross_engine else None,
            # The 95% interval of the ranked figure: the cross-engine one where shown, else ``speedup``'s.
            "speedup_interval": run.speedup_interval,
            "file_mb": run.file_mb,
            "reference_file_mb": run.reference_file_mb,
            "engine_rss_mb": run.engine_rss_mb,
            "reference_rss_mb": run.reference_rss_mb,
        })
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for column in ("latency_ms", "latency_p90_ms", "speedup", "speedup_spread", "accuracy", "top1_agreement",
                   "cosine", "max_abs_error", "prune_ratio", "task_value", "task_threshold", "reference_ms",
                   "reference_accuracy", "accuracy_loss_pts", "baseline_ms", "speedup_vs_baseline", "file_mb",
                   "reference_file_mb", "engine_rss_mb", "reference_rss_mb"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.sort_values("created", kind="stable").reset_index(drop=True) if oldest_first else frame


def verdict(score: TaskScore | None) -> str:
    """One run's own verdict in a word, from its stored task score alone (never from a neighbouring row)."""
    return "not judged" if score is None else state_flag(score)
