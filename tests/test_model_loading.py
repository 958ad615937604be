"""Every way a model file can be unusable gets one ModelError that says what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from workbench.errors import ModelError
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model


def test_inspects_sample(cnn: Path) -> None:
    info = inspect_model(load_model(cnn))
    assert info.inputs[0].name == "input"
    assert info.inputs[0].shape[0] == "batch"  # symbolic dim keeps its name
    assert info.inputs[0].shape[1:] == (1, 32, 32)
    assert info.outputs[0].shape == ("batch", 10)
    assert info.op_histogram["Conv"] >= 2
    assert info.parameters > 10_000
    assert info.opset == 17
    conv_flops = [f for name, f in info.flops_per_node.items() if "Conv" in name]
    assert conv_flops and all(f > 0 for f in conv_flops)


def test_resnet_costs_at_least_0_3_gflop(resnet: Path) -> None:
    assert inspect_model(load_model(resnet)).flops >= 0.3e9


def test_text_file_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 20)
    with pytest.raises(ModelError, match=r"not a readable ONNX model|no graph"):
        load_model(path)


def test_truncated_model(tmp_path: Path, cnn: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(cnn.read_bytes()[: cnn.stat().st_size // 2])
    with pytest.raises(ModelError, match=r"truncated|not a readable|not a valid"):
        load_model(path)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="No model file"):
        load_model(tmp_path / "nothing.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_model(tmp_path / "empty.onnx")


def _tiny_model(opset: int = 17) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    graph = helper.make_graph(
        [node], "tiny",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 4])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_external_data_outside_folder_is_refused(tmp_path: Path) -> None:
    model = _tiny_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(folder / "model.onnx")


def test_external_data_inside_folder_loads(tmp_path: Path) -> None:
    model = _tiny_model()
    onnx.save(model, str(tmp_path / "model.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    loaded = load_model(tmp_path / "model.onnx")
    assert numpy_helper.to_array(loaded.proto.graph.initializer[0]).sum() == 16
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(tmp_path / "model.onnx")


def test_unsupported_opset(tmp_path: Path) -> None:
    path = tmp_path / "old.onnx"
    path.write_bytes(_tiny_model(opset=3).SerializeToString())
    with pytest.raises(ModelError, match=r"opset 3.*convert_version"):
        load_model(path)


def test_invalid_graph(tmp_path: Path) -> None:
    model = _tiny_model()
    model.graph.node[0].input[1] = "does_not_exist"
    path = tmp_path / "broken.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load_model(path)


def test_digest_is_content_based(tmp_path: Path, cnn: Path) -> None:
    copy = tmp_path / "copy.onnx"
    shutil.copy(cnn, copy)
    assert load_model(copy).digest == load_model(cnn).digest
