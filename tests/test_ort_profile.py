"""ORT profiler traces into the layer table, on real profiles of the sample models."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import sample

from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.profiles.layer_table import COLUMNS
from workbench.profiles.ort_profile import layer_table_from_trace, map_kernel_names, read_ort_trace
from workbench.runs.pipeline import Pipeline
from workbench.workflows.profile import load_layer_table, profile_model

WARMUP, RUNS = 3, 8


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("ws"))


def _trace(model: Path, tmp: Path) -> str:
    feed = {"input": np.load(sample("digits_cnn").parent / "eval.npz")["input"][:1]}
    with get_backend().load(model, profile_dir=tmp) as engine:
        for _ in range(WARMUP + RUNS):
            engine.infer(feed)
        return engine.session.end_profiling()


@pytest.fixture(scope="module")
def fp32_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    model = sample("digits_cnn")
    return model, _trace(model, tmp_path_factory.mktemp("fp32"))


@pytest.fixture(scope="module")
def int8_trace(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = pipeline.run(sample("digits_cnn"), BuildOptions("int8", repeats=5))
    return Path(run.artifact), _trace(Path(run.artifact), tmp_path_factory.mktemp("int8"))


def test_only_kernel_events_after_warmup_become_rows(fp32_trace):
    model, path = fp32_trace
    events = json.loads(Path(path).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    trace = read_ort_trace(path)
    assert trace.runs == WARMUP + RUNS
    assert len(trace.kernels) == len(kernels)
    table = layer_table_from_trace(path, onnx.load(model), warmup=WARMUP)
    assert list(table.columns) == COLUMNS
    assert not table["name"].str.contains("model_run|SequentialExecutor|session").any()
    # one row per kernel of one run, in execution order
    assert len(table) == len(kernels) // (WARMUP + RUNS)
    # each layer's time is the median of its per-run times after the warm-up
    first = table["name"].iloc[0]
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[WARMUP:]
    durations = [e["dur"] / 1000 for e in kernels if e["name"] == first + "_kernel_time"
                 and any(r["ts"] <= e["ts"] <= r["ts"] + r["dur"] for r in runs)]
    assert len(durations) == RUNS
    assert table["time_ms"].iloc[0] == pytest.approx(statistics.median(durations))
    assert table["share"].sum() == pytest.approx(1.0)


def test_fp32_fused_kernels_map_back_to_every_onnx_node(fp32_trace):
    model, path = fp32_trace
    proto = onnx.load(model)
    table = layer_table_from_trace(path, proto, warmup=WARMUP)
    assert set(table["precision"]) == {"FP32"}
    mapped = [node for nodes in table["onnx_nodes"] for node in nodes]
    assert sorted(mapped) == sorted(n.name for n in proto.graph.node)  # each node in exactly one row
    conv = table[table["op_type"] == "Conv"].iloc[0]
    ops = {n.name: n.op_type for n in proto.graph.node}
    assert [ops[n] for n in conv["onnx_nodes"]] == ["Conv", "BatchNormalization", "Relu"]
    assert conv["flops"] > 0 and conv["gflops_per_s"] > 0
    assert conv["bytes"] > 0


def test_int8_rows_are_quantized_kernels_with_their_qdq_nodes(int8_trace):
    model, path = int8_trace
    proto = onnx.load(model)
    table = layer_table_from_trace(path, proto, warmup=WARMUP, source_model=onnx.load(sample("digits_cnn")))
    assert set(table["precision"]) == {"INT8"}
    assert "QLinearConv" in set(table["op_type"])
    ops = {n.name: n.op_type for n in proto.graph.node}
    for row in table[table["op_type"] == "QLinearConv"].itertuples():
        kinds = [ops[n] for n in row.onnx_nodes]
        assert "Conv" in kinds and "DequantizeLinear" in kinds
        assert row.flops > 0
    inserted = table[table["onnx_nodes"].map(len) == 0]
    assert set(inserted["op_type"]) <= {"Transpose", "ReorderInput", "ReorderOutput"}


def test_kernel_names_read_back_through_ort_decorations():
    proto = onnx.load(sample("digits_cnn"))
    relu_out = next(n.output[0] for n in proto.graph.node if n.op_type == "Relu")
    gemm = next(n.name for n in proto.graph.node if n.op_type == "Gemm")
    mapping = map_kernel_names([f"InsertedPrecisionFreeCast_{relu_out}_nchwc", f"fused {gemm}", "Transpose_token_3"],
                               proto)
    ops = {n.name: n.op_type for n in proto.graph.node}
    assert [ops[n] for n in mapping[f"InsertedPrecisionFreeCast_{relu_out}_nchwc"]] == [
        "Conv", "BatchNormalization", "Relu"]
    assert gemm in mapping[f"fused {gemm}"]
    assert mapping["Transpose_token_3"] == []


def test_not_a_trace_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "profile.json"
    bad.write_text('{"traceEvents": 3}')
    with pytest.raises(WorkbenchError, match="not an ONNX Runtime profile"):
        read_ort_trace(bad)
    bad.write_text("[]")
    with pytest.raises(WorkbenchError, match="no kernel events"):
        read_ort_trace(bad)


def test_profile_model_accounts_for_the_gap_and_keeps_the_table(pipeline: Pipeline):
    profile = profile_model(sample("digits_cnn"), BuildOptions("int8", warmup=3, repeats=10), pipeline=pipeline)
    assert profile.layer_sum_ms == pytest.approx(profile.layers["time_ms"].sum())
    assert profile.ratio == pytest.approx(profile.layer_sum_ms / profile.end_to_end_ms)
    # Measured nesting, not arithmetic: a run's kernels lie inside ORT's model_run span, which lies
    # inside the Python call that the profiled engine times.
    assert profile.layer_sum_ms * 0.8 <= profile.kernel_run_ms <= profile.session_ms
    assert profile.session_ms <= profile.profiled_end_to_end_ms
    # Every Conv and Gemm of the variant ran as (part of) some kernel in the table.
    variant = onnx.load(profile.model_path)
    compute = {n.name for n in variant.graph.node if n.op_type in ("Conv", "Gemm", "QLinearConv")}
    covered = {node for nodes in profile.layers["onnx_nodes"] for node in nodes}
    assert compute and compute <= covered
    data = profile.to_dict()
    assert {"end_to_end_ms", "layer_sum_ms", "ratio", "layers"} <= set(data)
    run = pipeline.workspace.load_run(profile.run_id)
    saved = load_layer_table(run)
    assert saved is not None and list(saved["name"]) == list(profile.layers["name"])
