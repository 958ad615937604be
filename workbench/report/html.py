"""One self-contained HTML file: runs, plots, environment and reproduce commands, readable offline.

plotly.js is embedded once (in the first figure), so the file opens from a USB stick in a
classroom without network and still draws every plot.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from workbench.plots import drift_along_graph, latency_vs_drift, task_drift_column, time_by_op_type, top_layers
from workbench.report.reproduce import reproduce_command
from workbench.runs.format import shown_table, target_text
from workbench.runs.frame import runs_frame
from workbench.runs.run import Run
from workbench.runs.saved_tables import read_table
from workbench.version import __version__

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f3f3f3; } td:nth-child(-n+3) { text-align: left; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.missing { color: #b00; }
.wide { overflow-x: auto; max-width: 100%; } .wide th { white-space: nowrap; }
"""

_SHOWN_COLUMNS = ["run_id", "model", "label", "backend", "batch", "latency_ms", "latency_p90_ms", "reference_ms",
                  "speedup", "speedup_spread", "baseline_backend", "speedup_vs_baseline", "speedup_interval",
                  "task_metric", "task_value", "task_interval", "task_threshold", "accuracy", "accuracy_loss_pts",
                  "top1_agreement", "max_abs_error", "file_mb", "reference_file_mb", "engine_rss_mb",
                  "reference_rss_mb", "status"]


NO_LAYER_TABLES = ("<p>None of these runs has layer timing or drift tables. Add them with "
                   "<code>workbench profile MODEL --precision P</code> (layer timing) and "
                   "<code>workbench drift MODEL --precision P</code> (per-layer drift), or build from the "
                   "notebook app, which runs both; then write the report again.</p>")


class _Figures:
    """Embeds plotly.js with the first figure only: one copy of the library per file."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: go.Figure) -> str:
        self.count += 1
        return fig.to_html(full_html=False, include_plotlyjs=self.count == 1, div_id=f"figure-{self.count}",
                           config={"displaylogo": False, "responsive": True})


def _run_tables_section(run: Run, figures: _Figures) -> str:
    parts = []
    for name, path in sorted(run.tables.items()):
        if not Path(path).is_file():
            parts.append(f'<p class="missing">{html.escape(name)} table: missing ({html.escape(path)})</p>')
            continue
        frame = read_table(path)
        if {"name", "op_type", "time_ms"} <= set(frame.columns):  # a layer timing table
            parts.append(figures.html(top_layers(frame, title=f"{run.label}: slowest layers")))
            parts.append(figures.html(time_by_op_type(frame, title=f"{run.label}: time by op type")))
        elif {"order", "local_sqnr_db", "accum_sqnr_db"} <= set(frame.columns):  # a per-layer drift table
            parts.append(figures.html(drift_along_graph(frame, title=f"{run.label}: drift along the graph")))
    if not parts:
        return ""
    return f"<h3>{html.escape(run.label)} <small>{run.run_id}</small></h3>" + "\n".join(parts)


def _pareto(frame: pd.DataFrame) -> go.Figure:
    """Latency against the task metric where every run shares one, else accuracy or top-1 agreement."""
    drift = task_drift_column(frame)
    if drift != "task_value":
        drift = "accuracy" if frame["accuracy"].notna().all() else "top1_agreement"
    return latency_vs_drift(frame, drift=drift, title=f"Latency vs {drift.replace('_', ' ')} (Pareto front dashed)")


def _environments(runs: Sequence[Run]) -> str:
    seen: dict[str, list[str]] = {}
    for run in runs:
        seen.setdefault(json.dumps(run.environment, sort_keys=True, indent=1), []).append(run.run_id)
    return "\n".join(f"<p>Runs {', '.join(ids)}:</p><pre>{html.escape(env)}</pre>" for env, ids in seen.items())


def _by_target(frame: pd.DataFrame, keys: list[str]):
    """Groups by ``keys`` and the hardware class (None for runs timed here), in order of first appearance."""
    target = frame["hardware_class"].astype(object).where(frame["hardware_class"].notna(), "")
    return (((*key[:-1], key[-1] or None), rows) for key, rows in
            frame.groupby([*(frame[k] for k in keys), target], sort=False))


def _group_title(model: object, target: str | None) -> str:
    where = f"on {target_text(target)} (timed on its own nodes; speed-ups compare only within it)" if target else ""
    return " ".join(part for part in (str(model) if model is not None else "", where) if part)


def render_report(runs: Sequence[Run], title: str = "Workbench report") -> str:
    """The whole page as one string; figures for tables that exist, 'missing' for those that vanished."""
    frame = runs_frame(runs)
    figures = _Figures()
    # One chart per model and hardware class: runs of different models, or timed on different machines,
    # do not compete for one Pareto front.
    pareto = "\n".join(f"<h3>{html.escape(_group_title(model, target))}</h3>" + figures.html(_pareto(rows))
                        for (model, target), rows in _by_target(frame, ["model"])) or "<p>No runs.</p>"
    per_run = "\n".join(section for run in runs if (section := _run_tables_section(run, figures)))
    commands = "\n".join(f"<p>{run.run_id} · {html.escape(run.label)}</p><pre>{html.escape(reproduce_command(run))}"
                         "</pre>" for run in runs)
    table = "\n".join((f"<h3>{html.escape(_group_title(None, target))}</h3>" if target else "")
                      + shown_table(rows, _SHOWN_COLUMNS).to_html(index=False, na_rep="n/a")
                      for (target,), rows in _by_target(frame, []))
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{len(runs)} runs · written {stamp} by workbench {__version__}. Latency is each run's own median per batch
(ms). Each run's FP32 reference is the same model in FP32 on the same engine and batch, timed in the same
interleaved rounds as the run, so FP32 ÷ latency is its speed-up; the cross-engine speed-up is against FP32
on the device's default engine, timed in blocks that alternate with those rounds. Points lost are against
the FP32 reference (accuracy with labels, top-1 agreement without). The FP32 reference is the star on each
chart. Runs built at different times are compared by their speed-ups: their absolute latencies move with
the machine's load.</p>
<h2>Runs</h2>
<div class="wide">{table}</div>
<h2>Latency vs accuracy</h2>
{pareto}
<h2>Layers</h2>
{per_run or NO_LAYER_TABLES}
<h2>Environment</h2>
{_environments(runs)}
<h2>Reproduce</h2>
{commands}
</body></html>
"""


def write_report(runs: Sequence[Run], path: str | Path, title: str = "Workbench report") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(runs, title), encoding="utf-8")
    return path
