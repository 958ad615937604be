"""The one per-layer timing schema that every source (ORT profiler, trtexec, TensorRT) fills.

Keeping a single schema is what lets a CPU profile, a TensorRT engine and an imported trtexec
export be plotted and compared side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

#: Column order of every layer table.
COLUMNS = [
    "name",        # layer name as the engine reports it (e.g. "Conv_0 + Relu_1")
    "onnx_nodes",  # list[str]: ONNX node names the layer came from
    "op_type",     # dominant op type (e.g. "Conv", "Reformat")
    "kernel",      # the implementation the engine ran (e.g. "brgconv_avx512_amx_I8"), None where unreported
    "precision",   # "FP32", "FP16", "BF16", "INT8", "mixed" or "unknown"
    "time_ms",     # median time per inference, milliseconds
    "share",       # time_ms / sum(time_ms)
    "flops",       # floating-point (or integer) operations per inference, NaN when unknown
    "bytes",       # bytes moved (weights + activations) per inference, NaN when unknown
    "gflops_per_s",
]


def make_layer_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a layer table from row dicts; fills share and achieved GFLOP/s."""
    frame = pd.DataFrame(list(rows))
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = float("nan") if column in {"flops", "bytes", "gflops_per_s"} else None
    if frame.empty:
        return frame[COLUMNS]
    frame["onnx_nodes"] = [list(v) if isinstance(v, (list, tuple)) else [] for v in frame["onnx_nodes"]]
    frame["precision"] = frame["precision"].fillna("unknown")
    frame["time_ms"] = frame["time_ms"].astype(float)
    total = frame["time_ms"].sum()
    frame["share"] = frame["time_ms"] / total if total > 0 else 0.0
    frame["flops"] = pd.to_numeric(frame["flops"], errors="coerce")
    frame["bytes"] = pd.to_numeric(frame["bytes"], errors="coerce")
    frame["gflops_per_s"] = frame["flops"] / (frame["time_ms"] * 1e6)
    return frame[COLUMNS].reset_index(drop=True)


@dataclass
class EngineProfile:
    """What a profiled engine measured over its timed runs: the layer table and two per-run medians.

    ``kernel_run_ms``: the summed layer times of a run (median over runs), which exceeds the layer
    table's sum when a slow call lands in a different layer each run. ``session_ms``: the runtime's
    own span of a run where it records one (ONNX Runtime's ``model_run``), else None.
    """

    layers: pd.DataFrame
    kernel_run_ms: float
    session_ms: float | None = None
