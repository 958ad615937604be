"""FP16/BF16 conversion: graphs every backend accepts, and reading a backend's refusal right."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from workbench.precision.fallback import blame
from workbench.precision.half import _tidy, convert_half


@pytest.mark.parametrize("name", ["digits_cnn", "digits_resnet", "digits_vit"])
def test_fp16_graphs_pass_the_full_checker(name: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue({"digits_cnn": "cnn", "digits_resnet": "resnet", "digits_vit": "vit"}[name])
    half = convert_half(onnx.load(str(path)), "fp16")
    onnx.checker.check_model(half, full_check=True)  # raises on a node listed before its inputs' producers
    names = [n.name for n in half.graph.node]
    assert len(names) == len(set(names))


def test_tidy_drops_a_cast_emitted_twice_and_sorts() -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["r"], ["r_cast"], name="c", to=TensorProto.FLOAT),
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Cast", ["r"], ["r_cast"], name="c_again", to=TensorProto.FLOAT),
            helper.make_node("Add", ["r_cast", "r_cast"], ["y"], name="relu"),
        ],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    _tidy(graph)
    assert [n.op_type for n in graph.node] == ["Relu", "Cast", "Add"]
    assert [n.name for n in graph.node] == ["relu", "c", "relu_1"]
    onnx.checker.check_model(helper.make_model(graph), full_check=True)


@pytest.mark.parametrize(("error", "op", "node"), [
    ("NOT_IMPLEMENTED : Could not find an implementation for ReduceMax(13) node with name ''", "ReduceMax", None),
    ("NOT_IMPLEMENTED : Could not find an implementation for Add(14) node with name '/Add'", "Add", "/Add"),
    # A schema that allows no BF16 at this opset: the whole op type goes back to FP32, not one node.
    ("INVALID_GRAPH : This is an invalid model. Type Error: Type 'tensor(bfloat16)' of input parameter "
     "(graph_input_cast_0) of operator (Conv) in node (/stem/Conv) is invalid.", "Conv", "/stem/Conv"),
    # A converter type clash names a node and no op: only that node is kept in FP32.
    ("Type Error: Type parameter (T) of Optype (Add) bound to different types (tensor(float) and "
     "tensor(float16) in node (/blocks/Add).", None, "/blocks/Add"),
])
def test_blame_reads_the_op_or_node(error: str, op: str | None, node: str | None) -> None:
    culprit = blame(error)
    assert (culprit.op_type, culprit.node) == (op, node)
