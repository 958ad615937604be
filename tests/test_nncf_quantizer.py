"""NNCF as the second INT8 quantizer: Q/DQ files that run on every CPU backend, presets and ignored scopes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from workbench.build_options import BuildOptions
from workbench.errors import BuildError
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline

pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'onnx-workbench[openvino]')")

NNCF = Recipe(quantizer="nncf")
pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'onnx-workbench[openvino]')")


def _weight_quantized(model: onnx.ModelProto) -> dict[str, bool]:
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return {node.name: node.input[1] in dequantized for node in model.graph.node if node.op_type in ("Conv", "Gemm")}


@pytest.mark.parametrize("backend", ["onnxruntime-cpu", "openvino"])
def test_nncf_int8_runs_on_every_backend_and_keeps_accuracy(cnn: Path, backend: str) -> None:
    pipeline = Pipeline()
    run = pipeline.run(cnn, BuildOptions("int8", recipe=NNCF, backend=backend, batch=8, repeats=3, warmup=1))
    default = pipeline.run(cnn, BuildOptions("int8", backend=backend, batch=8, repeats=3, warmup=1))
    assert run.run_id != default.run_id and run.artifact != default.artifact
    assert run.spec.quantizer == "nncf" and "nncf" in run.label
    assert any("by NNCF" in note and "fast bias correction" in note for note in run.notes), run.notes
    assert abs(run.drift["accuracy"] - run.drift["reference_accuracy"]) <= 0.02
    assert all(_weight_quantized(onnx.load(run.artifact)).values())
    if backend == "openvino":
        check = next(note for note in run.notes if note.startswith("INT8 check"))
        assert "ran dequantized" not in check, check


def test_nncf_uses_the_transformer_preset_on_attention_models(vit: Path) -> None:
    run = Pipeline().run(vit, BuildOptions("int8", recipe=NNCF, batch=8, repeats=3, warmup=1))
    note = next(note for note in run.notes if "by NNCF" in note)
    assert "model_type=TRANSFORMER" in note and "SmoothQuant" in note
    assert run.drift["top1_agreement"] >= 0.9, run.drift


def test_nncf_ignored_scope_keeps_named_nodes_fp32(cnn: Path) -> None:
    convs = [node.name for node in onnx.load(str(cnn)).graph.node if node.op_type == "Conv"]
    options = BuildOptions("int8", recipe=NNCF.replace(exclude_nodes=(convs[0],)), batch=8, repeats=3, warmup=1)
    run = Pipeline().run(cnn, options)
    quantized = _weight_quantized(onnx.load(run.artifact))
    assert quantized[convs[0]] is False and quantized[convs[1]] is True
    assert any("ignored scope" in note for note in run.notes)
    with pytest.raises(BuildError, match="not in the model"):
        Pipeline().run(cnn, BuildOptions("int8", recipe=NNCF.replace(exclude_nodes=("no_such_node",)), batch=8,
                                         repeats=3))


def test_unknown_quantizer_is_refused(cnn: Path) -> None:
    with pytest.raises(Exception, match="Unknown quantizer 'tflite'"):
        Pipeline().run(cnn, BuildOptions("int8", recipe=Recipe(quantizer="tflite")))


def test_build_panel_passes_the_quantizer() -> None:
    from workbench.ui.build_panel import BuildPanel

    panel = BuildPanel(lambda options: None, lambda: None)
    assert panel.options().recipe.quantizer == "onnxruntime"
    panel.quantizer.value = "nncf"
    assert panel.options().recipe.quantizer == "nncf"


def test_nncf_asymmetric_activations_run_unsigned_on_openvino(vit: Path) -> None:
    """NNCF writes asymmetric activation quantizers as int8; the file holds them as uint8 (the same grid),
    so OpenVINO runs the matrix products after them u8 x s8, as it runs NNCF's result on its own model."""
    from onnx import numpy_helper

    from workbench.backends.openvino_backend import OpenvinoBackend
    from workbench.profiles.openvino_profile import runtime_layers

    run = Pipeline().run(vit, BuildOptions("int8", recipe=NNCF, backend="openvino", batch=8, repeats=3, warmup=1))
    assert any("written as uint8" in note for note in run.notes), run.notes
    model = onnx.load(run.artifact)
    zero_points = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    signed_shifted = [node.name for node in model.graph.node if node.op_type == "QuantizeLinear"
                      and zero_points[node.input[2]].dtype.name == "int8" and zero_points[node.input[2]].any()]
    assert not signed_shifted
    assert run.drift["top1_agreement"] >= 0.9, run.drift
    with OpenvinoBackend().load(run.artifact) as engine:
        engine.infer({name: array[:8] for name, array in np.load(vit.parent / "eval.npz").items()})
        unsigned = [layer for layer in runtime_layers(engine.compiled_model) if layer.runtime_precision == "u8"
                    and layer.layer_type in ("FullyConnected", "MatMul", "Subgraph")]
    assert unsigned, "no matrix product ran on unsigned activations"
