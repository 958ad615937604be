"""A graph kept for its structure holds no weights, yet reads like the model: same nodes, shapes, small constants."""

from __future__ import annotations

import math
from pathlib import Path

import onnx

from workbench.memory.weight_values import WEIGHT_VALUES, drop_weight_values, graph_without_weights

ROOT = Path(__file__).resolve().parents[1]


def test_the_copy_keeps_the_graph_and_small_constants_and_leaves_the_model_whole() -> None:
    model = onnx.load(str(ROOT / "sample_models" / "digits_vit" / "model.onnx"))
    before = model.SerializeToString()
    copy = drop_weight_values(model)
    assert model.SerializeToString() == before  # the model it was made from is untouched
    assert copy.opset_import == model.opset_import and copy.ir_version == model.ir_version
    assert copy.graph.node == model.graph.node and copy.graph.input == model.graph.input
    large = [t for t in model.graph.initializer if math.prod(t.dims) > WEIGHT_VALUES]
    assert large, "the sample model should have weights above the threshold"
    for original, kept in zip(model.graph.initializer, copy.graph.initializer, strict=True):
        assert (kept.name, list(kept.dims), kept.data_type) == (original.name, list(original.dims), original.data_type)
        if math.prod(original.dims) > WEIGHT_VALUES:
            assert not kept.raw_data and not kept.float_data
        else:
            assert kept == original
    weight_bytes = sum(t.ByteSize() for t in large)
    assert copy.ByteSize() < model.ByteSize() - 0.99 * weight_bytes
    inferred = onnx.shape_inference.infer_shapes(copy, strict_mode=True)  # small constants (shapes) still read
    assert len(inferred.graph.value_info) > 0


def test_a_threshold_of_everything_keeps_every_value() -> None:
    graph = onnx.load(str(ROOT / "sample_models" / "digits_cnn" / "model.onnx")).graph
    assert graph_without_weights(graph, larger_than=10**12) == graph
