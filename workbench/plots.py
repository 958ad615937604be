"""Plotly figures for the analysis tables; each takes DataFrames, never runs or engines.

Taking frames keeps the figures reusable from the widgets, the HTML report and a plain notebook,
and testable on real tables. Colours are fixed per precision (``PRECISION_COLORS``) and per op
type (sorted, from one palette) so the same thing looks the same in every figure.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

#: One colour per precision, used by every figure (and by other modules that colour runs).
PRECISION_COLORS = {
    "FP32": "#4C78A8",
    "FP16": "#F58518",
    "BF16": "#B279A2",
    "INT8": "#54A24B",
    "INT8-DYNAMIC": "#88D27A",
    "FP8": "#E45756",
    "FP64": "#72B7B2",
    "MIXED": "#9D755D",
    "UNKNOWN": "#BAB0AC",
}
_OP_PALETTE = plotly.colors.qualitative.Plotly + plotly.colors.qualitative.Dark24
_LAYOUT_OPS = {"Transpose", "ReorderInput", "ReorderOutput", "Reformat", "Cast", "QuantizeLinear", "DequantizeLinear"}


def precision_color(precision: str | None) -> str:
    """The colour of a precision, whatever its spelling ('int8', 'INT8')."""
    return PRECISION_COLORS.get(str(precision or "unknown").upper(), PRECISION_COLORS["UNKNOWN"])


def op_colors(op_types: list[str]) -> dict[str, str]:
    """Stable op-type colours: the same op gets the same colour for the same set of ops."""
    return {op: _OP_PALETTE[i % len(_OP_PALETTE)] for i, op in enumerate(sorted(set(op_types)))}


def _short(name: str, width: int = 42) -> str:
    """Middle ellipsis: the start (which block) and the end (which op) of a long name both stay readable."""
    if len(name) <= width:
        return name
    tail = (width - 1) // 2
    return name[:width - 1 - tail] + "…" + name[-tail:]


def unique_labels(names: list[str], width: int = 42) -> list[str]:
    """Each name shortened with a middle ellipsis, widened until no two different names share a label, so two
    rows never stack into one bar; a name that is repeated gets '#2', '#3' after it."""
    names = [str(n) for n in names]
    distinct = list(dict.fromkeys(names))
    size = width
    while True:
        short = {name: _short(name, size) for name in distinct}
        if len(set(short.values())) == len(distinct) or size >= max(map(len, distinct), default=0):
            break
        size += 6
    labels, seen = [], {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(short[name] if seen[name] == 1 else f"{short[name]} #{seen[name]}")
    return labels


def layer_names(layers: pd.DataFrame) -> list[str]:
    """What each row is called in a chart: the ONNX node it runs (not the runtime's output tensor), op beside it."""
    return [f"{layer_key(name, nodes)} ({op})"
            for name, nodes, op in zip(layers["name"], layers["onnx_nodes"], layers["op_type"], strict=True)]


#: Pixels per bar of a horizontal bar chart, so every bar keeps its own label (plotly drops labels that crowd).
ROW_PX = 24


def _nodes_text(nodes: object) -> str:
    nodes = list(nodes) if isinstance(nodes, (list, tuple, np.ndarray)) else []
    return "<br>".join(nodes[:8]) + ("<br>…" if len(nodes) > 8 else "") if nodes else "(inserted by the runtime)"


def top_layers(layers: pd.DataFrame, n: int = 15, title: str | None = None) -> go.Figure:
    """The ``n`` slowest layers, longest on top, one colour per op type."""
    top = layers.sort_values("time_ms", ascending=False).head(n).iloc[::-1]
    top = top.assign(label=unique_labels(layer_names(top)))
    colors = op_colors(list(layers["op_type"]))
    figure = go.Figure()
    for op_type, rows in top.groupby("op_type", sort=True):
        figure.add_bar(
            name=op_type,
            orientation="h",
            x=rows["time_ms"],
            y=rows["label"],
            marker_color=colors[op_type],
            text=[f"{ms:.3g} ms" for ms in rows["time_ms"]],
            textposition="auto",
            customdata=np.stack([
                rows["name"], rows["precision"], rows["share"] * 100,
                rows["gflops_per_s"].fillna(-1), [_nodes_text(v) for v in rows["onnx_nodes"]],
            ], axis=-1),
            hovertemplate=("<b>%{y}</b><br>runtime layer %{customdata[0]}<br>%{x:.4f} ms "
                           "(%{customdata[2]:.1f}% of layer time)<br>precision %{customdata[1]}"
                           "<br>%{customdata[3]:.1f} GFLOP/s (-1: unknown)"
                           "<br>ONNX nodes:<br>%{customdata[4]}<extra>" + op_type + "</extra>"),
        )
    figure.update_layout(
        title=title or f"Top {len(top)} layers by time",
        xaxis={"title": "time per batch (ms)", "rangemode": "tozero"},
        yaxis={"title": "layer (ONNX node, op type)", "categoryorder": "array", "categoryarray": list(top["label"]),
               "tickmode": "array", "tickvals": list(top["label"]), "automargin": True},
        legend_title="op type",
        barmode="stack",
        height=max(320, 120 + ROW_PX * len(top)),
    )
    return figure


def time_by_op_type(layers: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Total time per op type, stacked by the precision each layer ran in."""
    grouped = layers.groupby(["op_type", "precision"], as_index=False).agg(
        time_ms=("time_ms", "sum"), layers=("name", "count"))
    order = grouped.groupby("op_type")["time_ms"].sum().sort_values(ascending=False).index.tolist()
    total = float(layers["time_ms"].sum()) or 1.0
    figure = go.Figure()
    for precision, rows in grouped.groupby("precision", sort=True):
        figure.add_bar(
            name=precision,
            x=rows["op_type"],
            y=rows["time_ms"],
            marker_color=precision_color(precision),
            customdata=np.stack([rows["layers"], rows["time_ms"] / total * 100], axis=-1),
            hovertemplate=("<b>%{x}</b> (" + precision + ")<br>%{y:.4f} ms in %{customdata[0]} layers"
                           "<br>%{customdata[1]:.1f}% of layer time<extra></extra>"),
        )
    figure.update_layout(
        title=title or "Time by op type",
        xaxis={"title": "op type", "categoryorder": "array", "categoryarray": order},
        yaxis={"title": "time per batch (ms)", "rangemode": "tozero"},
        legend_title="precision",
        barmode="stack",
    )
    return figure


def layer_key(name: str, onnx_nodes: object) -> str:
    """What a row computes, comparable across variants: its first node that is real work.

    A fused FP32 Conv+BN+Relu and the INT8 QLinearConv with its Q/DQ both key to the Conv node;
    rows the runtime inserted (layout, casts) key to their own name.
    """
    nodes = list(onnx_nodes) if isinstance(onnx_nodes, (list, tuple, np.ndarray)) else []
    for node in nodes:
        tail = node.rsplit("/", 1)[-1]
        if not any(op in tail for op in ("QuantizeLinear", "DequantizeLinear", "Cast")):
            return node
    return nodes[0] if nodes else name


def compare_layers(
    tables: Mapping[str, pd.DataFrame],
    n: int = 15,
    precisions: Mapping[str, str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """The same layers across variants side by side: the ``n`` slowest in any of them."""
    if len(tables) < 2:
        raise ValueError("compare_layers needs two or more layer tables")
    keyed, ops = {}, {}
    for label, table in tables.items():
        frame = table.assign(key=[layer_key(a, b) for a, b in zip(table["name"], table["onnx_nodes"], strict=True)])
        keyed[label] = frame.groupby("key", sort=False).agg(
            time_ms=("time_ms", "sum"), name=("name", " + ".join), precision=("precision", "first"))
        for key, op in zip(frame["key"], frame["op_type"], strict=True):
            ops.setdefault(key, [])
            if op not in ops[key]:
                ops[key].append(op)  # e.g. Conv in FP32, QLinearConv in INT8: both named
    longest = pd.concat([frame["time_ms"] for frame in keyed.values()], axis=1).max(axis=1)
    keys = longest.sort_values(ascending=False).head(n).index.tolist()[::-1]
    labels = unique_labels([f"{key} ({' / '.join(ops[key])})" for key in keys])
    precisions = dict(precisions or {})
    distinct = len(set(precisions.values())) == len(precisions) == len(tables)
    figure = go.Figure()
    for index, (label, frame) in enumerate(keyed.items()):
        rows = frame.reindex(keys)
        color = precision_color(precisions[label]) if distinct else _OP_PALETTE[index % len(_OP_PALETTE)]
        figure.add_bar(
            name=label,
            orientation="h",
            x=rows["time_ms"],
            y=labels,
            marker_color=color,
            customdata=np.stack([keys, rows["name"].fillna("(not in this variant)"),
                                 rows["precision"].fillna("-")], axis=-1),
            hovertemplate=("<b>%{customdata[0]}</b><br>" + label + ": %{x:.4f} ms, %{customdata[2]}"
                           "<br>runtime layer: %{customdata[1]}<extra></extra>"),
        )
    figure.update_layout(
        title=title or "Layers across variants",
        xaxis={"title": "time per batch (ms)", "rangemode": "tozero"},
        yaxis={"title": "layer (ONNX node, op type)", "categoryorder": "array", "categoryarray": labels,
               "tickmode": "array", "tickvals": labels, "automargin": True},
        barmode="group",
        legend_title="variant",
        height=max(320, 120 + ROW_PX * len(keys) * min(len(tables), 3) // 2),
    )
    return figure


def drift_along_graph(drift: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Local versus accumulated SQNR per tensor in graph order; dips mark layers that add noise."""
    custom = np.stack([drift["tensor"], drift["node"], drift["op_type"], drift["local_cosine"],
                       drift["accum_cosine"], drift["local_max_abs_error"], drift["accum_max_abs_error"]], axis=-1)
    hover = ("<b>%{customdata[1]}</b> (%{customdata[2]})<br>tensor %{customdata[0]}<br>%{y:.2f} dB"
             "<br>cosine local %{customdata[3]:.6f}, accumulated %{customdata[4]:.6f}"
             "<br>max |err| local %{customdata[5]:.4g}, accumulated %{customdata[6]:.4g}"
             "<extra>%{fullData.name}</extra>")
    figure = go.Figure()
    figure.add_scatter(name="local (this layer's own noise)", x=drift["order"], y=drift["local_sqnr_db"],
                       mode="lines+markers", customdata=custom, hovertemplate=hover, line_color="#E45756")
    figure.add_scatter(name="accumulated (vs FP32 end to end)", x=drift["order"], y=drift["accum_sqnr_db"],
                       mode="lines+markers", customdata=custom, hovertemplate=hover, line_color="#4C78A8")
    step = -(-len(drift) // MAX_TICKS)  # at most MAX_TICKS names under the axis; every point hovers with its name
    ticks = drift.iloc[::step]
    figure.update_layout(
        title={"text": title or "Per-layer drift along the graph", "y": 0.97, "yanchor": "top"},
        xaxis={"title": "layer (ONNX node), in graph order" + (f"; one name in {step}, hover for all" if step > 1
                                                                  else ""),
               "tickmode": "array", "tickvals": list(ticks["order"]),
               "ticktext": unique_labels(list(ticks["node"]), width=28), "tickangle": 45, "automargin": True},
        yaxis={"title": {"text": "SQNR vs FP32 (dB, higher: better)", "standoff": 8}, "automargin": True},
        legend_title="error",
        margin={"b": 40, "t": 70, "l": 90},
    )
    return figure


#: Names under a per-layer axis: more overlap at a notebook's width, whatever the angle.
MAX_TICKS = 24
_RANDOM_NOTE = "<br>RANDOM eval data: drift means nothing"
_HIGHER_IS_BETTER = {"accuracy": True, "top1_agreement": True, "cosine": True, "max_abs_error": False,
                     "task_value": True}
#: Outline of a variant that misses its task's budget (or is broken): never the pick, always visible.
MISSED_COLOR = "#d62728"


def task_drift_column(frame: pd.DataFrame) -> str:
    """The task metric when every run has the same one, else the generic output error."""
    if "task_metric" in frame and frame["task_value"].notna().all() and frame["task_metric"].nunique() == 1:
        return "task_value"
    return "max_abs_error"


def pareto_front(frame: pd.DataFrame, x: str, y: str, higher_is_better: bool) -> pd.Series:
    """True for rows no other row beats on both lower ``x`` and better ``y``."""
    values = frame[[x, y]].to_numpy(dtype=float, copy=True)
    if higher_is_better:
        values[:, 1] = -values[:, 1]
    valid = ~np.isnan(values).any(axis=1)
    front = np.zeros(len(frame), dtype=bool)
    for i in np.flatnonzero(valid):
        others = values[valid]
        dominated = np.any(np.all(others <= values[i], axis=1) & np.any(others < values[i], axis=1))
        front[i] = not dominated
    return pd.Series(front, index=frame.index)


def latency_vs_drift(runs: pd.DataFrame, drift: str = "max_abs_error", title: str | None = None) -> go.Figure:
    """Every run of a model: latency against drift, by precision, with the Pareto front drawn."""
    if drift not in _HIGHER_IS_BETTER:
        raise ValueError(f"drift must be one of {sorted(_HIGHER_IS_BETTER)}")
    higher = _HIGHER_IS_BETTER[drift]
    # Per sample, so batch-1 and batch-8 runs share an axis that means the same for both; one front per
    # model and batch (runs of different models or batches do not compete).
    frame = runs.assign(per_sample_ms=runs["latency_ms"] / runs["batch"])
    groups = frame.groupby(["model", "batch"], sort=False).groups.values() if len(frame) else []
    on_front = pd.Series(False, index=frame.index)
    for index in groups:
        on_front[index] = pareto_front(frame.loc[index], "per_sample_ms", drift, higher)
    frame = frame.assign(on_front=on_front)
    name = frame["task_metric"].iloc[0] if drift == "task_value" and len(frame) else drift
    missed = (frame["meets_budget"] == False).to_numpy() if "meets_budget" in frame else np.zeros(len(frame), bool)  # noqa: E712
    frame = frame.assign(missed=missed)
    hover = ("<b>%{customdata[0]}</b><br>%{x:.4f} ms per sample, " + str(name) + " %{y:.6g}"
             "<br>speed-up %{customdata[1]:.2f}x<br>run %{customdata[2]}%{customdata[3]}<extra></extra>")
    figure = go.Figure()
    # One trace per precision, backend and batch where there is more than one of either: a legend that separates them.
    keys = ["precision"] + [c for c in ("backend", "batch") if frame[c].nunique() > 1]
    symbols = {backend: BACKEND_SYMBOLS[i % len(BACKEND_SYMBOLS)]
               for i, backend in enumerate(sorted(frame["backend"].unique()))}
    for key, rows in frame.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        precision = key[0]
        figure.add_scatter(
            name=" · ".join(f"b{v}" if c == "batch" else str(v) for c, v in zip(keys, key, strict=True)),
            x=rows["per_sample_ms"],
            y=rows[drift],
            mode="markers",
            marker={"color": precision_color(precision), "size": 11,
                    "symbol": ["x" if r else symbols[b] for r, b in zip(rows["random_data"], rows["backend"],
                                                                        strict=True)],
                    "line": {"width": [2.5 if f or m else 0
                                       for f, m in zip(rows["on_front"], rows["missed"], strict=True)],
                             "color": [MISSED_COLOR if m else "black" for m in rows["missed"]]}},
            customdata=np.stack([rows["label"], rows["speedup"], rows["run_id"],
                                 [(_RANDOM_NOTE if r else "") + ("<br>MISSES its budget" if m else "")
                                  for r, m in zip(rows["random_data"], rows["missed"], strict=True)]], axis=-1),
            hovertemplate=hover,
        )
    for (model, batch), rows in frame.groupby(["model", "batch"], sort=False):
        reference = _reference_point(rows, drift)
        if reference is not None:
            figure.add_scatter(name=f"FP32 reference · {model} b{batch}", x=[reference[0]], y=[reference[1]],
                               mode="markers", marker={"symbol": "star", "size": 14, "color": precision_color("fp32"),
                                                       "line": {"width": 1, "color": "black"}},
                               hovertemplate=f"<b>FP32 reference</b> ({model}, batch {batch}, on {reference[2]})<br>"
                                             "%{x:.4f} ms per sample<extra></extra>", cliponaxis=False)
        front = rows[rows["on_front"]].sort_values("per_sample_ms")
        figure.add_scatter(name="Pareto front", x=front["per_sample_ms"], y=front[drift], mode="lines",
                           line={"color": "black", "dash": "dash"}, hoverinfo="skip",
                           showlegend=(model, batch) == next(iter(frame.groupby(["model", "batch"]).groups)))
    units = {"max_abs_error": "max |error| vs FP32 (lower: better)",
             "cosine": "cosine to FP32 (higher: better)",
             "accuracy": "accuracy (higher: better)",
             "top1_agreement": "top-1 agreement (higher: better)",
             "task_value": f"{name} (higher: better)"}
    yaxis = {"title": {"text": units[drift], "standoff": 6}, "automargin": True}
    if (higher and drift != "task_value") or (drift == "task_value" and frame[drift].le(1).all()):
        # A share or agreement ends at 1 (perfect): a single point no longer stretches the axis to 2.
        low = float(np.nanmin(frame[drift].to_numpy(dtype=float))) if len(frame) else 0.0
        yaxis["range"] = [min(low, 1.0) - max(0.02, (1.0 - min(low, 1.0)) * 0.1), 1.0]
    else:
        yaxis["rangemode"] = "tozero"
    figure.update_traces(cliponaxis=False)
    figure.update_layout(
        title={"text": title or "Latency versus drift", "y": 0.97, "yanchor": "top"},
        xaxis={"title": "latency per sample (ms): median per batch ÷ batch", "rangemode": "tozero"},
        yaxis=yaxis,
        legend_title=" · ".join(keys),
        margin={"t": 70},
    )
    return figure


#: Marker shape per backend, so runs of two engines in one chart never read as one series.
BACKEND_SYMBOLS = ("circle", "diamond", "square", "triangle-up", "pentagon", "hexagon")


_PERFECT = {"max_abs_error": 0.0, "cosine": 1.0, "top1_agreement": 1.0}


def _reference_point(rows: pd.DataFrame, drift: str) -> tuple[float, float, str] | None:
    """Where FP32 itself sits: its stored latency (each run's own FP32 reference, per sample; their median) and
    no drift at all, or its own accuracy; and the engine it ran on. Drawn on every latency/accuracy chart."""
    if "reference_ms" not in rows or rows["reference_ms"].isna().all():
        return None
    per_sample = rows["reference_ms"] / rows["batch"]
    x = float(per_sample.median())
    backend = str(rows.loc[(per_sample - x).abs().idxmin(), "backend"])
    metric = rows["task_metric"].iloc[0] if drift == "task_value" and "task_metric" in rows else None
    accuracy = "reference_accuracy" in rows and rows["reference_accuracy"].notna().any()
    if (drift == "accuracy" or metric == "accuracy") and accuracy:
        return x, float(rows["reference_accuracy"].dropna().iloc[0]), backend
    if drift == "task_value" and metric is not None and ":" not in str(metric):
        return x, 1.0, backend  # a task measure against FP32's own outputs: FP32 scores 1 on it
    return (x, _PERFECT[drift], backend) if drift in _PERFECT else None
