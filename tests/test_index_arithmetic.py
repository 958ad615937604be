"""Static INT8 keeps its quantizers off the floating-point arithmetic that computes integer indices.

The case is MPNet's (and T5's) relative attention bias: the bucket of each query-key distance is computed
as Cast(float) -> Div -> Log -> Mul -> Cast(int64) and gathers a bias table. The model is the sample ViT
(trained on the digits) with that bucket arithmetic written into its first attention, op for op as
PyTorch exports all-mpnet-base-v2's ``relative_position_bucket``, and a small bias table; Q/DQ on the
arithmetic (``Log`` of 0 calibrates to -inf) turns the indices into garbage and the Gather fails.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from workbench.build_options import BuildOptions
from workbench.errors import BuildError
from workbench.precision import unquantizable
from workbench.precision.index_paths import index_arithmetic
from workbench.runs.pipeline import Pipeline

BUCKETS, MAX_DISTANCE = 32, 128
EXACT = BUCKETS // 2 // 2
#: The bucket arithmetic's float nodes, the ones a quantizer must leave alone.
FLOAT_NODES = ["rel/CastFloat", "rel/DivExact", "rel/Log", "rel/DivLog", "rel/MulSpan"]


def _const(name: str, value, dtype) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=name + "/Constant",
                            value=numpy_helper.from_array(np.array(value, dtype=dtype), name))


def _bucket_nodes(scores: str) -> list[onnx.NodeProto]:
    """MPNet's relative-position bucket of every (query, key) pair of ``scores`` [batch, heads, seq, seq],
    gathered from a bias table [buckets, heads] and returned as ``rel/bias`` [1, heads, seq, seq]."""
    i64, f32 = np.int64, np.float32
    n = helper.make_node
    return [
        n("Shape", [scores], ["rel/shape"], name="rel/Shape"), _const("rel/two", 2, i64),
        n("Gather", ["rel/shape", "rel/two"], ["rel/seq"], name="rel/GatherSeq"),
        _const("rel/zero", 0, i64), _const("rel/one", 1, i64),
        n("Range", ["rel/zero", "rel/seq", "rel/one"], ["rel/pos"], name="rel/Range"),
        _const("rel/ax0", [0], i64), _const("rel/ax1", [1], i64),
        n("Unsqueeze", ["rel/pos", "rel/ax0"], ["rel/keys"], name="rel/UnsqueezeKeys"),
        n("Unsqueeze", ["rel/pos", "rel/ax1"], ["rel/queries"], name="rel/UnsqueezeQueries"),
        n("Sub", ["rel/keys", "rel/queries"], ["rel/distance"], name="rel/Sub"),
        n("Neg", ["rel/distance"], ["rel/neg"], name="rel/Neg"),
        _const("rel/zero_i", 0, i64), n("Less", ["rel/neg", "rel/zero_i"], ["rel/ahead"], name="rel/Less"),
        n("Cast", ["rel/ahead"], ["rel/ahead_i"], name="rel/CastAhead", to=TensorProto.INT64),
        _const("rel/half", BUCKETS // 2, i64), n("Mul", ["rel/ahead_i", "rel/half"], ["rel/side"], name="rel/MulSide"),
        n("Abs", ["rel/neg"], ["rel/abs"], name="rel/Abs"),
        _const("rel/exact_i", EXACT, i64), n("Less", ["rel/abs", "rel/exact_i"], ["rel/small"], name="rel/LessExact"),
        n("Cast", ["rel/abs"], ["rel/abs_f"], name="rel/CastFloat", to=TensorProto.FLOAT),
        _const("rel/exact_f", float(EXACT), f32),
        n("Div", ["rel/abs_f", "rel/exact_f"], ["rel/ratio"], name="rel/DivExact"),
        n("Log", ["rel/ratio"], ["rel/log"], name="rel/Log"),
        _const("rel/log_span", math.log(MAX_DISTANCE / EXACT), f32),
        n("Div", ["rel/log", "rel/log_span"], ["rel/scaled"], name="rel/DivLog"),
        _const("rel/span", float(BUCKETS // 2 - EXACT), f32),
        n("Mul", ["rel/scaled", "rel/span"], ["rel/far_f"], name="rel/MulSpan"),
        n("Cast", ["rel/far_f"], ["rel/far"], name="rel/CastIndex", to=TensorProto.INT64),
        n("Add", ["rel/far", "rel/exact_i"], ["rel/far_bucket"], name="rel/AddExact"),
        _const("rel/last", BUCKETS // 2 - 1, i64),
        n("Min", ["rel/far_bucket", "rel/last"], ["rel/capped"], name="rel/Min"),
        n("Where", ["rel/small", "rel/abs", "rel/capped"], ["rel/magnitude"], name="rel/Where"),
        n("Add", ["rel/side", "rel/magnitude"], ["rel/bucket"], name="rel/AddSide"),
        n("Gather", ["rel/table", "rel/bucket"], ["rel/bias_qkh"], name="rel/GatherBias"),
        n("Transpose", ["rel/bias_qkh"], ["rel/bias_hqk"], name="rel/Transpose", perm=[2, 0, 1]),
        n("Unsqueeze", ["rel/bias_hqk", "rel/ax0"], ["rel/bias"], name="rel/UnsqueezeBias"),
    ]


def with_relative_bias(vit: Path, dst: Path) -> Path:
    """The sample ViT with an MPNet-style relative attention bias added to its first attention's scores."""
    model = onnx.load(str(vit))
    graph = model.graph
    softmax = next(node for node in graph.node if node.op_type == "Softmax")
    scores = softmax.input[0]
    heads = 4
    table = np.random.default_rng(0).normal(0, 0.5, (BUCKETS, heads)).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(table, "rel/table"))
    nodes = [*_bucket_nodes(scores), helper.make_node("Add", [scores, "rel/bias"], ["rel/scores"], name="rel/AddBias")]
    at = list(graph.node).index(softmax)
    softmax.input[0] = "rel/scores"
    for offset, node in enumerate(nodes):
        graph.node.insert(at + offset, node)
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    for name in ("calib.npz", "eval.npz"):
        shutil.copyfile(vit.parent / name, dst.parent / name)
    return dst


@pytest.fixture
def relative_vit(vit: Path, tmp_path: Path) -> Path:
    return with_relative_bias(vit, tmp_path / "relative_vit" / "model.onnx")


def test_index_arithmetic_is_found_by_walking_the_graph(relative_vit: Path, vit: Path) -> None:
    assert index_arithmetic(onnx.load(str(relative_vit))) == FLOAT_NODES
    assert index_arithmetic(onnx.load(str(vit))) == []


def _options() -> BuildOptions:
    return BuildOptions("int8", batch=8, repeats=2, warmup=1)


def _no_dequantized_input(path: str | Path) -> None:
    """The bucket arithmetic is all there, and none of it reads a DequantizeLinear's output."""
    graph = onnx.load(str(path)).graph
    dequantized = {name for node in graph.node if node.op_type == "DequantizeLinear" for name in node.output}
    arithmetic = [node for node in graph.node if node.name in FLOAT_NODES]
    assert len(arithmetic) == len(FLOAT_NODES) and not any(name in dequantized for n in arithmetic for name in n.input)


def test_static_int8_with_relative_position_bias_builds_runs_and_is_judged(relative_vit: Path) -> None:
    run = Pipeline().run(relative_vit, _options())
    notes = [note for note in run.notes if "only computes integer indices" in note]
    assert len(notes) == 1 and all(name in notes[0] for name in FLOAT_NODES), run.notes
    _no_dequantized_input(run.artifact)
    assert run.drift["task"]["task"] == "classification" and run.drift["accuracy"] >= 0.9, run.drift["task"]


def test_nncf_keeps_the_index_arithmetic_in_its_ignored_scope(relative_vit: Path, tmp_path: Path) -> None:
    pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'onnx-workbench[openvino]')")
    import onnxruntime as ort

    from workbench.data.loaders import load_npz
    from workbench.precision.nncf_int8 import quantize_int8_nncf

    out = tmp_path / "nncf.onnx"
    notes = quantize_int8_nncf(relative_vit, out, load_npz(relative_vit.parent / "calib.npz").take(16))
    assert any("NNCF ignored scope" in note and "rel/Log" in note for note in notes), notes
    _no_dequantized_input(out)
    feed = {"input": np.load(relative_vit.parent / "eval.npz")["input"][:32]}
    int8, fp32 = (ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
                  for path in (out, relative_vit))
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.9


def test_a_variant_that_fails_at_first_inference_is_a_build_error(relative_vit: Path, vit: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the walk, ONNX Runtime's quantizer breaks the indices: the engine loads the file but its first
    inference fails, which the pipeline reports as a build error in the engine's words; earlier runs stay."""
    pipeline = Pipeline()
    earlier = pipeline.run(vit, BuildOptions("fp32", batch=8, repeats=2, warmup=1))
    monkeypatch.setattr(unquantizable, "index_arithmetic", lambda model: [])
    with pytest.raises(BuildError) as caught:
        pipeline.run(relative_vit, _options())
    message = str(caught.value)
    assert "first inference fails" in message and "rel/GatherBias" in message and "--exclude" in message, message
    assert [run.run_id for run in pipeline.runs()] == [earlier.run_id]
