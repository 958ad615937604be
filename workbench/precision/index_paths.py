"""Floating-point arithmetic that only computes integer indices, found so that quantizers leave it alone.

Exported transformers with relative position buckets (MPNet, T5) compute their bias table's Gather
indices in floating point: Cast(int to float), Div, Log, Mul, then Cast back to int64. A static
quantizer sees that arithmetic as ordinary activations and puts Q/DQ on it; the calibrated range of
``Log`` holds -inf (the log of 0 on the diagonal, a value a later Where discards in FP32), so every
index becomes garbage and the engine fails at the first Gather ("indices element out of data
bounds"). Such nodes do no work worth quantizing, so they are found by walking the graph and kept in
FP32 by name, in both quantizers (ONNX Runtime's ``nodes_to_exclude``, NNCF's ignored scope).
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from workbench.model.graph_order import consumers
from workbench.model.op_types import COMPUTE_OP_TYPES

#: Matrix products and convolutions are a network's work; a Constant has nothing a quantizer would touch.
_NEVER_LISTED = {*COMPUTE_OP_TYPES, "Constant"}
_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
#: Inputs (by position) that are read as indices, shapes or counts, never as values.
_INDEX_INPUTS: dict[str, frozenset[int]] = {
    "Gather": frozenset({1}), "GatherElements": frozenset({1}), "GatherND": frozenset({1}),
    "ScatterElements": frozenset({1}), "ScatterND": frozenset({1}), "Reshape": frozenset({1}),
    "Expand": frozenset({1}), "Tile": frozenset({1}), "ConstantOfShape": frozenset({0}),
    "Range": frozenset({0, 1, 2}), "Slice": frozenset({1, 2, 3, 4}), "Resize": frozenset({1, 2, 3}),
    "Upsample": frozenset({1}), "TopK": frozenset({1}), "OneHot": frozenset({0, 1}),
    "Unsqueeze": frozenset({1}), "Squeeze": frozenset({1}), "Pad": frozenset({1}),
}


def _casts_to_integer(node: onnx.NodeProto) -> bool:
    if node.op_type != "Cast":
        return False
    to = next((attr.i for attr in node.attribute if attr.name == "to"), TensorProto.FLOAT)
    return to not in _FLOATS


def float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the tensors whose type is floating point, by ONNX's shape inference (external data not needed)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference fails on some custom ops: what the graph declares still counts
        inferred = model
    graph = inferred.graph
    typed = [*graph.value_info, *graph.input, *graph.output]
    names = {v.name for v in typed if v.type.tensor_type.elem_type in _FLOATS}
    return names | {init.name for init in graph.initializer if init.data_type in _FLOATS}


def index_arithmetic(model: onnx.ModelProto) -> list[str]:
    """The nodes computing floating-point values that end only in integer indices, shapes or counts
    (through a Cast to an integer type or an index input), in graph order. Matrix products and
    convolutions are never listed: their outputs are a network's work even when an index is drawn from them."""
    graph = model.graph
    floats = float_tensors(model)
    users = consumers(graph)
    outputs = {out.name for out in graph.output}
    index_only: set[str] = set()
    for node in reversed(graph.node):  # ONNX graphs are in topological order: consumers are decided first
        if node.op_type in _NEVER_LISTED or not node.name or not any(out in floats for out in node.output):
            continue
        uses = [(user, name) for name in node.output if name for user in users.get(name, [])]
        if not uses or any(name in outputs for name in node.output):
            continue
        if all(_reads_as_index(user, name, index_only) for user, name in uses):
            index_only.add(node.name)
    return [node.name for node in graph.node if node.name in index_only]


def _reads_as_index(user: onnx.NodeProto, tensor: str, index_only: set[str]) -> bool:
    if user.name in index_only or _casts_to_integer(user):
        return True
    slots = _INDEX_INPUTS.get(user.op_type, frozenset())
    return all(position in slots for position, name in enumerate(user.input) if name == tensor)


def index_arithmetic_note(nodes: list[str], quantizer: str) -> list[str]:
    """The run's note on the nodes kept out of quantization because they compute indices."""
    if not nodes:
        return []
    shown = ", ".join(nodes[:6]) + (f" (and {len(nodes) - 6} more)" if len(nodes) > 6 else "")
    return [f"kept in FP32 ({quantizer}): {len(nodes)} node(s) of floating-point arithmetic that only computes "
            f"integer indices or shapes, where Q/DQ would turn the indices into garbage: {shown}"]
