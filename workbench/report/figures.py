"""The report's figures, each built from a frame (never from runs).

Kept minimal: the analysis plots module owns the full set (hover details, per-op colouring,
side-by-side variants); these functions give the report its Pareto, layer-time and drift views
until the report can call that module directly.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

PRECISION_COLORS = {"fp32": "#1f77b4", "fp16": "#ff7f0e", "bf16": "#9467bd", "int8": "#2ca02c",
                    "int8-dynamic": "#17becf"}


def pareto_front(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows no other row beats on both ``x`` and ``y`` (lower is better on both), ordered by ``x``."""
    ordered = frame.dropna(subset=[x, y]).sort_values([x, y])
    keep, best = [], float("inf")
    for index, value in ordered[y].items():
        if value < best:
            keep.append(index)
            best = value
    return ordered.loc[keep]


def pareto_figure(runs: pd.DataFrame) -> go.Figure:
    """Latency against accuracy lost, one colour per precision, the Pareto front as a line."""
    fig = go.Figure()
    for precision, group in runs.groupby("precision", sort=False):
        fig.add_trace(go.Scatter(
            x=group["latency_ms"], y=group["accuracy_loss_pts"], mode="markers", name=precision,
            marker={"size": 11, "color": PRECISION_COLORS.get(precision)},
            text=group["variant"] + " · " + group["run_id"],
            hovertemplate="%{text}<br>%{x:.3f} ms, %{y:.2f} pts lost<extra></extra>",
        ))
    front = pareto_front(runs, "latency_ms", "accuracy_loss_pts")
    fig.add_trace(go.Scatter(x=front["latency_ms"], y=front["accuracy_loss_pts"], mode="lines+markers",
                             name="Pareto front", line={"dash": "dash", "color": "#555"}, hoverinfo="skip",
                             marker={"size": 18, "symbol": "circle-open", "color": "#555"}))
    basis = ", ".join(sorted(set(runs["loss_basis"].dropna())))
    fig.update_layout(title="Latency vs accuracy lost (lower-left is better)",
                      xaxis_title="latency, median (ms)", yaxis_title=f"points lost vs FP32 ({basis})",
                      template="plotly_white", height=460)
    return fig


def layer_time_figure(layers: pd.DataFrame, title: str, top: int = 20) -> go.Figure:
    """The ``top`` slowest layers of a layer table, slowest on top."""
    shown = layers.nlargest(top, "time_ms").iloc[::-1]
    fig = go.Figure(go.Bar(
        x=shown["time_ms"], y=shown["name"], orientation="h",
        text=shown["op_type"], customdata=shown["precision"],
        hovertemplate="%{y}<br>%{text}, %{customdata}<br>%{x:.4f} ms<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="time per inference, median (ms)", yaxis_title="layer",
                      template="plotly_white", height=max(300, 22 * len(shown) + 120))
    return fig


def layer_drift_figure(drift: pd.DataFrame, title: str) -> go.Figure:
    """Every numeric error column of a per-layer drift table along graph order."""
    label = drift["name"] if "name" in drift else drift.index.astype(str)
    fig = go.Figure()
    for column in drift.select_dtypes("number").columns:
        fig.add_trace(go.Scatter(x=list(range(len(drift))), y=drift[column], mode="lines+markers", name=column,
                                 text=label, hovertemplate="%{text}<br>%{y:.4g}<extra>" + column + "</extra>"))
    fig.update_layout(title=title, xaxis_title="layer, in graph order", yaxis_title="error",
                      template="plotly_white", height=400)
    return fig
