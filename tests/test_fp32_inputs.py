"""A layer kept in FP32 computes on FP32 inputs: on the outlier sample that is the whole fix."""

from __future__ import annotations

from pathlib import Path

import onnx

from workbench.build_options import BuildOptions
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline

HEAD = "/classifier/classifier.3/Gemm"


def test_keeping_the_layer_after_the_outlier_restores_accuracy(outlier: Path) -> None:
    pipeline = Pipeline()
    plain = pipeline.run(outlier, BuildOptions("int8", repeats=3))
    kept = pipeline.run(outlier, BuildOptions("int8", recipe=Recipe(exclude_nodes=(HEAD,)), repeats=3))
    assert plain.drift["reference_accuracy"] == 1.0
    assert plain.drift["accuracy"] < 0.5  # the outlier unit stretches its tensor's one INT8 scale
    assert kept.drift["accuracy"] > 0.95
    graph = onnx.load(kept.artifact).graph
    head = next(n for n in graph.node if n.name == HEAD)
    producers = {out: n.op_type for n in graph.node for out in n.output}
    assert producers[head.input[0]] != "DequantizeLinear"  # the outlier unit reaches it unrounded
    assert any("on FP32 inputs" in note for note in kept.notes)
