"""How a run's figures are written: the one place every face (CLI, widgets, report) formats them.

A figure shown on two faces must read the same on both, and a speed-up must say which FP32 it is
against. So the CLI's run/show/runs/sweep/tune output, the Results and Sweep tabs and the report all
take the stored fields of a run (``Run.latency_ms``, ``Run.speedup``, ``Run.speedup_vs_baseline``)
through the functions here; none recomputes a ratio from two medians.
"""

from __future__ import annotations

import math

import pandas as pd

from workbench.runs.run import Run

NA = "n/a"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def ms(value: float | None) -> str:
    """Milliseconds to four significant digits, never in exponent form: 13.76, 0.2836, 0.01234, 1235."""
    if _missing(value):
        return NA
    value = float(value)
    if value == 0:
        return "0"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def times(value: float | None) -> str:
    """A ratio as '3.41x'."""
    return NA if _missing(value) else f"{float(value):.2f}x"


def pct(value: float | None) -> str:
    """A share as '98.50%'."""
    return NA if _missing(value) else f"{float(value) * 100:.2f}%"


def points(value: float | None) -> str:
    return NA if _missing(value) else f"{float(value):.2f}"


def points_phrase(value: float) -> str:
    """'1 point', '0.5 points': a budget in accuracy points, in words."""
    return f"{value:g} point{'' if value == 1 else 's'}"


def reference_name(backend: str, batch: int) -> str:
    """The FP32 a speed-up is against: 'FP32 on onnxruntime-cpu, batch 8' (same model, same machine)."""
    return f"FP32 on {backend}, batch {batch}"


def interval_cell(interval: object) -> str:
    """A speed-up's 95% interval as '[3.35, 3.47]'; empty for a run stored without one."""
    if _missing(interval) or not isinstance(interval, list | tuple) or len(interval) != 2:
        return ""
    return f"[{float(interval[0]):.2f}, {float(interval[1]):.2f}]"


def speedup_noise(run: Run) -> str:
    """How far the ranked speed-up may be off: 'its 95% interval [3.35x, 3.47x]' (``Run.speedup_interval``), or, for
    a run stored without one, 'its spread of ±0.10', the bound ``Run.speedup_low`` then reads."""
    if run.speedup_interval:
        low, high = run.speedup_interval
        return f"its 95% interval [{times(low)}, {times(high)}]"
    return f"its spread of ±{run.speedup_spread or 0.0:.2f}"


def speedup_text(run: Run) -> str:
    """The headline: '3.41x [3.35, 3.47] vs FP32 on onnxruntime-cpu, batch 8', against FP32 timed in the same rounds,
    with its 95% interval where the run is on the ranking engine (the interval is of the ranked figure)."""
    shown = "" if run.cross_engine else _with_interval(run)
    return f"{times(run.speedup)}{shown} vs {reference_name(run.spec.backend, run.spec.batch)}"


def _with_interval(run: Run) -> str:
    cell = interval_cell(run.speedup_interval)
    return f" {cell}" if cell else ""


def cross_engine_text(run: Run) -> str | None:
    """'1.86x [1.80, 1.91] vs FP32 on onnxruntime-cpu, batch 1 (cross-engine)', or None where the run is on that
    engine; the 95% interval is this figure's."""
    if not run.cross_engine:
        return None
    return (f"{times(run.speedup_vs_baseline)}{_with_interval(run)} vs "
            f"{reference_name(run.baseline_backend, run.spec.batch)} (cross-engine)")


def comparable_text(run: Run) -> str:
    """The figure runs of different engines are ranked by, labelled: cross-engine where it is, else the headline."""
    return cross_engine_text(run) or speedup_text(run)


#: Where a run not timed on a cluster was timed, as tables and titles name it.
THIS_MACHINE = "this machine"


def target_text(hardware_class: object) -> str:
    """Where a run was timed: its hardware class on a cluster ('cpu-amx'), else 'this machine'. The runs table's
    column, a run's summary and the report's per-class titles name a target through this one function."""
    return THIS_MACHINE if _missing(hardware_class) or not hardware_class else str(hardware_class)


def target_columns(frame: pd.DataFrame) -> list[str]:
    """The runs-frame columns that tell its rows' targets apart, where they have more than one: the hardware
    class, and the node where one class's runs come from several. A ratio compares only within one target,
    so a table mixing targets must say which row is which."""
    classes = frame["hardware_class"].map(target_text)
    shown = ["hardware_class"] if classes.nunique() > 1 else []
    if (frame["node"].fillna("").groupby(classes).nunique() > 1).any():
        shown.append("node")
    return shown


def megabytes(value: object) -> str:
    """A size in MB (a file on disk, or the memory an engine added): one decimal, n/a when not measured."""
    return NA if _missing(value) else f"{float(value):.1f}"


#: runs-frame column -> (shown name with its unit, formatter). The order is the order tables show them in.
CELLS = {
    "run_id": ("run", str),
    "model": ("model", str),
    "label": ("variant", str),
    "precision": ("precision", str),
    "prune_method": ("pruning", lambda v: "none" if _missing(v) else str(v)),
    "prune_ratio": ("pruned share", lambda v: NA if _missing(v) else f"{float(v):g}"),
    "batch": ("batch", lambda v: str(int(v))),
    "backend": ("backend", str),
    "hardware_class": ("hardware class", target_text),
    "node": ("node", lambda v: "" if _missing(v) else str(v)),
    "latency_ms": ("latency (ms/batch)", ms),
    "latency_p90_ms": ("p90 (ms/batch)", ms),
    "reference_ms": ("FP32 same rounds (ms/batch)", ms),
    "speedup": ("speed-up vs FP32, same engine (×)", times),
    "speedup_spread": ("spread (±×)", lambda v: NA if _missing(v) else f"±{float(v):.2f}"),
    "baseline_backend": ("cross-engine FP32", lambda v: "" if _missing(v) else str(v)),
    "speedup_vs_baseline": ("speed-up vs cross-engine FP32 (×)", lambda v: "" if _missing(v) else times(v)),
    "speedup_interval": ("95% interval, of the cross-engine figure where shown (×)", interval_cell),
    "accuracy": ("accuracy (%)", pct),
    "reference_accuracy": ("FP32 accuracy (%)", pct),
    "top1_agreement": ("top-1 agreement (%)", pct),
    "cosine": ("cosine", lambda v: NA if _missing(v) else f"{float(v):.5f}"),
    "max_abs_error": ("max abs error", lambda v: NA if _missing(v) else f"{float(v):.4g}"),
    "task_metric": ("task metric", lambda v: NA if _missing(v) else str(v)),
    "task_value": ("task value", lambda v: NA if _missing(v) else f"{float(v):.4f}"),
    "task_threshold": ("task budget (≥)", lambda v: NA if _missing(v) else f"{float(v):.4g}"),
    "task_interval": ("95% interval", lambda v: "" if _missing(v) else str(v)),
    "task_samples": ("samples judged", lambda v: NA if _missing(v) else str(int(v))),
    "accuracy_loss_pts": ("accuracy lost (points)", points),
    "loss_basis": ("lost on", str),
    "kept_fp32": ("layers kept FP32", lambda v: str(int(v))),
    "file_mb": ("file MB", megabytes),
    "reference_file_mb": ("FP32 file MB", megabytes),
    "engine_rss_mb": ("RSS MB (load + 1 batch)", megabytes),
    "reference_rss_mb": ("FP32 RSS MB (load + 1 batch)", megabytes),
    "created": ("built", lambda v: pd.Timestamp(v).strftime("%m-%d %H:%M")),
    "verdict": ("verdict", str),
    "status": ("status", str),
}


def shown_table(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The runs frame as people read it: the chosen columns, human names with units, each cell written by the
    formatter of its column, so the CLI, the Results tab and the report print the same digits."""
    shown = pd.DataFrame(index=frame.index)
    for column in columns:
        name, write = CELLS[column]
        shown[name] = [write(value) for value in frame[column]]
    return shown.reset_index(drop=True)
