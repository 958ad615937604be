"""Per-layer drift on real INT8 and FP16 variants of the sample models."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import sample

from workbench.build_options import BuildOptions
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline
from workbench.workflows.layer_drift import DRIFT_COLUMNS, drift_for_run


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("ws"))


def test_int8_drift_table_in_graph_order(pipeline: Pipeline):
    run = pipeline.run(sample("digits_cnn"), BuildOptions("int8", repeats=5))
    report = drift_for_run(run, samples=16, pipeline=pipeline)
    table = report.table
    assert list(table.columns) == DRIFT_COLUMNS
    assert list(table["order"]) == list(range(len(table)))
    assert {"Conv", "Gemm", "MaxPool"} <= set(table["op_type"])
    assert np.isfinite(table[["local_sqnr_db", "accum_sqnr_db", "weight_sqnr_db"]].dropna()).all().all()
    # the first layer has no upstream noise: its local and accumulated errors are the same
    assert table["local_sqnr_db"].iloc[0] == pytest.approx(table["accum_sqnr_db"].iloc[0], abs=0.05)
    # downstream, noise piles up: the output carries more error than its own layer makes
    assert table["accum_sqnr_db"].iloc[-1] < table["local_sqnr_db"].iloc[-1]
    # quantized layers report the rounding of their weights and of their INT8 output grid
    convs = table[table["op_type"] == "Conv"]
    assert (convs["weight_sqnr_db"] > 20).all() and (convs["activation_qdq_sqnr_db"] > 20).all()
    worst = report.worst(1)
    assert worst["op_type"].iloc[0] in {"Conv", "Gemm"}


def test_fp16_drift_is_small_and_local_for_every_layer(pipeline: Pipeline):
    run = pipeline.run(sample("digits_cnn"), BuildOptions("fp16", repeats=5))
    table = drift_for_run(run, samples=16, pipeline=pipeline).table
    assert len(table) >= 10
    assert (table["local_sqnr_db"] > 50).all()  # half precision rounds at ~1e-3 relative
    assert table["activation_qdq_sqnr_db"].isna().all()


def test_keeping_the_worst_layer_in_fp32_lowers_the_output_error(pipeline: Pipeline):
    model = sample("digits_resnet")
    plain = pipeline.run(model, BuildOptions("int8", repeats=5))
    report = drift_for_run(plain, samples=32, pipeline=pipeline)
    worst = report.worst(1)["node"].iloc[0]
    best = report.table.sort_values("local_sqnr_db")["node"].iloc[-1]
    assert worst != best
    kept = pipeline.run(model, BuildOptions("int8", recipe=Recipe(exclude_nodes=(worst,)), repeats=5))
    assert kept.drift["snr_db"] > plain.drift["snr_db"]
    assert kept.drift["mean_abs_error"] < plain.drift["mean_abs_error"]


def test_transformer_drift_reads_every_weight_right(pipeline: Pipeline):
    run = pipeline.run(sample("digits_vit"), BuildOptions("int8", repeats=3))
    table = drift_for_run(run, samples=16, pipeline=pipeline).table
    assert {"MatMul", "Softmax", "LayerNormalization"} <= set(table["op_type"])
    weights = table["weight_sqnr_db"].dropna()
    assert len(weights) > 20
    assert (weights > 20).all()  # U8 biases with a zero point must not wrap around into noise
    assert (table["local_sqnr_db"] > 15).all()
