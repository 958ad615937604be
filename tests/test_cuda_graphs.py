"""When the CUDA backend times a model through CUDA graphs, and the reason it gives when it does not.

These decisions are made before ONNX Runtime starts, from the model file and the backend's options,
so they are checked here on the real sample models and on small real ONNX models that ONNX Runtime
runs, on any machine. The GPU side (capture, replay, ONNX Runtime refusing) is in test_backend_cuda.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from workbench.backends import cuda_graphs
from workbench.backends.onnxruntime_cuda import CUDA_PROVIDER, OnnxruntimeCudaBackend
from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions
from workbench.precision.variants import build_variant
from workbench.runs.pipeline import Pipeline


def _model(nodes: list[onnx.NodeProto], inputs: list, outputs: list, initializers: tuple = ()) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _if_model() -> onnx.ModelProto:
    """y = relu(x) when x sums positive, else -x: the branch depends on the data."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    then_out = helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 3])
    else_out = helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, 3])
    then_graph = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [then_out])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [else_out])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["y"], name="sign_branch", then_branch=then_graph,
                         else_branch=else_graph),
    ]
    return _model(nodes, [x], [y], (zero,))


def _nonzero_model() -> onnx.ModelProto:
    """Indices of the non-zero entries: as many columns as the data has non-zeros."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [1, None])
    return _model([helper.make_node("NonZero", ["x"], ["y"], name="where_nonzero")], [x], [y])


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_the_sample_models_and_their_variants_allow_graphs(cnn: Path, resnet: Path, vit: Path,
                                                           tmp_path: Path) -> None:
    backend = OnnxruntimeCudaBackend()
    check = get_backend("onnxruntime-cpu").check_loadable
    half = build_variant(resnet, tmp_path / "fp16.onnx", "fp16", check=check).path
    for path in (cnn, resnet, vit, half):
        assert cuda_graphs.graph_blocker(onnx.load(str(path))) is None
        assert backend.graph_choice(path) == cuda_graphs.ON
        assert backend.graph_choice(path).note.startswith("CUDA graphs on")


def test_control_flow_is_named_as_the_reason(tmp_path: Path) -> None:
    model = _if_model()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([[1, -2, 3], [4, -5, 6]], np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], np.maximum(x, 0))  # a model that runs
    np.testing.assert_array_equal(session.run(None, {"x": -x})[0], x)
    choice = OnnxruntimeCudaBackend().graph_choice(_save(model, tmp_path / "if.onnx"))
    assert not choice.enabled
    assert choice.note.startswith("CUDA graphs off:")
    assert "If node 'sign_branch'" in choice.note and "control flow" in choice.note


def test_data_dependent_sizes_are_named_as_the_reason(tmp_path: Path) -> None:
    model = _nonzero_model()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.array([0, 1, 0, 2], np.float32)})[0].shape == (1, 2)
    assert session.run(None, {"x": np.array([3, 1, 0, 2], np.float32)})[0].shape == (1, 3)  # shapes vary
    choice = OnnxruntimeCudaBackend().graph_choice(_save(model, tmp_path / "nonzero.onnx"))
    assert not choice.enabled
    assert "NonZero node 'where_nonzero'" in choice.note and "depends on the data" in choice.note


def test_an_explicit_option_and_the_profiler_turn_graphs_off(cnn: Path) -> None:
    for value in ("0", "False"):
        choice = OnnxruntimeCudaBackend({cuda_graphs.OPTION: value}).graph_choice(cnn)
        assert not choice.enabled and f"{cuda_graphs.OPTION}={value}" in choice.note
    assert OnnxruntimeCudaBackend({cuda_graphs.OPTION: "1"}).graph_choice(cnn).enabled
    profiled = OnnxruntimeCudaBackend().graph_choice(cnn, profiling=True)
    assert not profiled.enabled and "profiler" in profiled.note


def test_the_provider_option_follows_the_choice(cnn: Path) -> None:
    backend = OnnxruntimeCudaBackend()
    name, options = backend.providers_for(cnn, graphs=True)[0]
    assert name == CUDA_PROVIDER and options[cuda_graphs.OPTION] == "1"
    assert backend.providers_for(cnn)[0][1][cuda_graphs.OPTION] == "0"
    assert backend.providers_for(cnn, graphs=True)[0][1]["use_tf32"] == "0"  # the other options stay


def test_cpu_runs_carry_no_cuda_graph_notes(cnn: Path) -> None:
    run = Pipeline().run(cnn, BuildOptions("fp16", batch=8, repeats=5))
    assert run.notes and not any("CUDA graphs" in note for note in run.notes)
