"""Every figure built from real tables: traces, axis titles, hover names and colours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import sample

from workbench import plots
from workbench.build_options import BuildOptions
from workbench.runs.frame import RUN_COLUMNS, runs_frame
from workbench.runs.pipeline import Pipeline
from workbench.workflows.layer_drift import drift_for_run
from workbench.workflows.profile import profile_model


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict:
    pipeline = Pipeline(tmp_path_factory.mktemp("ws"))
    model = sample("digits_cnn")
    fp32 = profile_model(model, BuildOptions("fp32", warmup=3, repeats=10), pipeline=pipeline)
    int8 = profile_model(model, BuildOptions("int8", warmup=3, repeats=10), pipeline=pipeline)
    pipeline.run(model, BuildOptions("fp16", repeats=5))
    int8_run = pipeline.workspace.load_run(int8.run_id)
    drift = drift_for_run(int8_run, samples=16, pipeline=pipeline).table
    return {"fp32": fp32.layers, "int8": int8.layers, "drift": drift, "runs": runs_frame(pipeline.runs())}


def test_top_layers(tables):
    layers = tables["int8"]
    figure = plots.top_layers(layers, n=5)
    assert figure.layout.xaxis.title.text == "time per batch (ms)"
    assert figure.layout.yaxis.title.text == "layer (ONNX node, op type)"
    assert figure.layout.xaxis.rangemode == "tozero"
    labels = [label for trace in figure.data for label in trace.y]
    assert len(set(labels)) == len(labels) == 5 and list(figure.layout.yaxis.tickvals) == list(
        figure.layout.yaxis.categoryarray)  # every bar its own label, each named by its ONNX node and op
    assert all(label.endswith(")") and "_output_" not in label for label in labels)
    shown = [float(x) for trace in figure.data for x in trace.x]
    assert sorted(shown, reverse=True) == sorted(layers["time_ms"].nlargest(5), reverse=True)
    assert {trace.name for trace in figure.data} <= set(layers["op_type"])
    colors = plots.op_colors(list(layers["op_type"]))
    assert all(trace.marker.color == colors[trace.name] for trace in figure.data)
    full_names = {row[0] for trace in figure.data for row in trace.customdata}
    assert full_names == set(layers.nlargest(5, "time_ms")["name"])


def test_time_by_op_type(tables):
    layers = tables["fp32"]
    figure = plots.time_by_op_type(layers)
    assert figure.layout.xaxis.title.text == "op type"
    assert figure.layout.yaxis.title.text == "time per batch (ms)"
    assert [trace.name for trace in figure.data] == ["FP32"]
    assert figure.data[0].marker.color == plots.PRECISION_COLORS["FP32"]
    assert sum(figure.data[0].y) == pytest.approx(layers["time_ms"].sum())
    assert set(figure.data[0].x) == set(layers["op_type"])


def test_compare_layers_matches_fused_and_quantized_rows(tables):
    figure = plots.compare_layers({"FP32": tables["fp32"], "INT8": tables["int8"]},
                                  precisions={"FP32": "fp32", "INT8": "int8"}, n=30)
    assert [trace.name for trace in figure.data] == ["FP32", "INT8"]
    assert figure.layout.xaxis.title.text == "time per batch (ms)"
    assert figure.layout.barmode == "group"
    assert figure.data[1].marker.color == plots.PRECISION_COLORS["INT8"]
    fp32, int8 = (dict(zip(trace.customdata[:, 0], trace.x, strict=True)) for trace in figure.data)
    convs = [key for key in fp32 if key.endswith("/Conv")]
    assert len(convs) == 3  # each FP32 Conv+BN+Relu row lines up with its INT8 QLinearConv row
    assert all(fp32[key] > 0 and int8[key] > 0 for key in convs)
    with pytest.raises(ValueError):
        plots.compare_layers({"FP32": tables["fp32"]})


def test_drift_along_graph(tables):
    drift = tables["drift"]
    figure = plots.drift_along_graph(drift)
    assert len(figure.data) == 2
    assert figure.data[0].name.startswith("local") and figure.data[1].name.startswith("accumulated")
    assert figure.layout.xaxis.title.text == "layer (ONNX node), in graph order"
    assert figure.layout.yaxis.title.text.startswith("SQNR vs FP32 (dB")
    assert list(figure.data[0].y) == pytest.approx(list(drift["local_sqnr_db"]))
    assert list(figure.data[1].customdata[:, 1]) == list(drift["node"])


def test_latency_vs_drift_marks_the_pareto_front(tables):
    runs = tables["runs"]
    assert list(runs.columns) == RUN_COLUMNS and len(runs) == 3
    figure = plots.latency_vs_drift(runs, drift="max_abs_error")
    names = [trace.name for trace in figure.data]
    assert names == ["fp16", "fp32", "int8", "FP32 reference · digits_cnn b1", "Pareto front"]
    star = figure.data[3]  # FP32 itself: its latency from each run's speed-up, no drift
    assert star.y[0] == 0 and star.x[0] > 0
    assert figure.layout.xaxis.title.text == "latency per sample (ms): median per batch ÷ batch"
    assert "max |error|" in figure.layout.yaxis.title.text
    for trace in figure.data[:3]:
        assert trace.marker.color == plots.precision_color(trace.name)
    front = plots.pareto_front(runs, "latency_ms", "max_abs_error", higher_is_better=False)
    values = runs[["latency_ms", "max_abs_error"]].to_numpy()
    for i, on_front in enumerate(front):
        beaten = any(np.all(values[j] <= values[i]) and np.any(values[j] < values[i])
                     for j in range(len(values)) if j != i)
        assert on_front == (not beaten)
    assert len(figure.data[-1].x) == int(front.sum())
    assert runs.loc[runs["precision"] == "fp32", "max_abs_error"].iloc[0] == 0  # FP32 is its own reference


def test_pareto_front_handles_higher_is_better():
    frame = pd.DataFrame({"latency_ms": [1.0, 2.0, 3.0], "accuracy": [0.90, 0.95, 0.94]})
    assert list(plots.pareto_front(frame, "latency_ms", "accuracy", higher_is_better=True)) == [True, True, False]


def test_one_run_chart_reads_from_zero_to_one_with_fp32_drawn(tables):
    runs = tables["runs"]
    one = runs[runs["precision"] == "int8"]
    for drift in ("top1_agreement", plots.task_drift_column(one)):
        figure = plots.latency_vs_drift(one, drift=drift)
        assert figure.layout.xaxis.rangemode == "tozero"
        if drift != "max_abs_error":
            assert figure.layout.yaxis.range[1] == 1.0 and figure.layout.yaxis.range[0] < 1.0
        star = next(trace for trace in figure.data if trace.name.startswith("FP32 reference"))
        assert star.x[0] == pytest.approx(float(one["reference_ms"].iloc[0] / one["batch"].iloc[0]))


def test_runs_of_two_backends_are_told_apart_in_the_legend(tables):
    runs = tables["runs"]
    other = runs.assign(backend="openvino", run_id=runs["run_id"] + "-ov")
    figure = plots.latency_vs_drift(pd.concat([runs, other], ignore_index=True), drift="max_abs_error")
    names = [trace.name for trace in figure.data if not trace.name.startswith(("FP32 reference", "Pareto"))]
    assert "int8 · openvino" in names and "int8 · onnxruntime-cpu" in names
    symbols = {trace.name: trace.marker.symbol[0] for trace in figure.data if trace.name in names}
    assert symbols["int8 · openvino"] != symbols["int8 · onnxruntime-cpu"]


def test_long_layer_names_never_collide():
    names = ["/layer4/layer4.1/shortcut.1/BatchNormalization_output_0_nchwc",
             "/layer3/layer3.1/shortcut.1/BatchNormalization_output_0_nchwc", "/stem/Conv", "/stem/Conv"]
    labels = plots.unique_labels(names, width=30)
    assert len(set(labels)) == 4 and all(len(label) <= 48 for label in labels)
    assert labels[0].startswith("/layer4") and "…" in labels[0] and labels[3] == "/stem/Conv #2"
