"""Per-node FLOP counts from inferred shapes, for the layer table's achieved-GFLOP/s column.

No maintained library counts FLOPs on arbitrary ONNX graphs without pulling a framework in, and
the ops that dominate inference time (Conv, MatMul, Gemm) have simple closed forms. Symbolic
dims (the batch) count as 1, so figures are per sample; other symbolic dims (an image's height and
width) count as 1 too unless the caller gives the shapes of real samples, as ``inspect`` does from the
evaluation data.

Weights and work inside control flow count too (exporters put whole models in an ``If`` branch, as
silero-vad does per sample rate): parameters of every branch and body, FLOPs of the costlier ``If``
branch (one of them runs), and of a ``Loop``/``Scan`` body once (per iteration: the count is data's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import onnx
from onnx import numpy_helper

_ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Erf", "Sqrt", "Pow", "Exp",
    "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Gelu", "BatchNormalization", "Softmax",
    "LayerNormalization", "ReduceMean",
}


def _dims(value_info: onnx.ValueInfoProto) -> list[int] | None:
    shape = value_info.type.tensor_type.shape
    if not value_info.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else 1 for d in shape.dim]


def with_input_shapes(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """A copy of the graph (weights shared by reference are not needed for shapes) with its inputs fixed."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        if value.name in shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, shapes[value.name], strict=False):
                dim.Clear()
                dim.dim_value = int(size)
    return fixed


def subgraphs(node: onnx.NodeProto) -> list[tuple[str, onnx.GraphProto]]:
    """The graphs a control-flow node holds (If's branches, Loop's and Scan's body), by attribute name."""
    found = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            found.append((attr.name, attr.g))
        found += [(f"{attr.name}{i}", g) for i, g in enumerate(attr.graphs)]
    return found


def _all_graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """The graph and every graph nested in its nodes, outermost first."""
    graphs = [graph]
    for node in graph.node:
        for _, sub in subgraphs(node):
            graphs += _all_graphs(sub)
    return graphs


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # shape inference is best-effort: FLOPs become "unknown", not an error
        inferred = model
    shapes: dict[str, list[int]] = {}
    for graph in _all_graphs(inferred.graph):
        for info in [*graph.input, *graph.value_info, *graph.output]:
            dims = _dims(info)
            if dims is not None:
                shapes.setdefault(info.name, dims)
        for init in graph.initializer:
            shapes.setdefault(init.name, list(init.dims))
        for node in graph.node:  # a Constant's value has a known shape even where inference stopped
            if node.op_type == "Constant" and node.output:
                for attr in node.attribute:
                    if attr.name == "value":
                        shapes.setdefault(node.output[0], list(attr.t.dims))
    return shapes


def node_flops(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, float]:
    """FLOPs (multiply-add = 2) per node name; nodes whose shapes are unknown are left out.

    ``input_shapes`` (one sample each, batch 1) replace the graph's symbolic input dims first."""
    shapes = _shapes(with_input_shapes(model, input_shapes) if input_shapes else model)
    return _graph_flops(model.graph, shapes, "")


def _graph_flops(graph: onnx.GraphProto, shapes: Mapping[str, list[int]], prefix: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for index, node in enumerate(graph.node):
        name = prefix + (node.name or f"{node.op_type}_{index}")
        flops = _node_flops(node, shapes)
        if flops is not None:
            result[name] = flops
        inner = [_graph_flops(sub, shapes, f"{name}/{attr}/") for attr, sub in subgraphs(node)]
        if node.op_type == "If" and inner:
            inner = [max(inner, key=lambda branch: sum(branch.values()))]  # one branch runs: the costlier
        for branch in inner:
            result.update(branch)
    return result


def _node_flops(node: onnx.NodeProto, shapes: Mapping[str, list[int]]) -> float | None:
    out = shapes.get(node.output[0]) if node.output else None
    trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
    return shape_flops(node.op_type, [shapes.get(i) for i in node.input], out, bool(trans_a))


#: Gates per recurrent cell: each is one matrix product per step.
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
#: Kernels ONNX Runtime fuses or renames, counted as the op they compute.
OP_ALIASES = {"FusedConv": "Conv", "FusedMatMul": "MatMul", "FusedGemm": "Gemm"}


def shape_flops(op_type: str, ins: Sequence[Sequence[int] | None], out: Sequence[int] | None,
                trans_a: bool = False) -> float | None:
    """FLOPs of one op from its input and first output shapes (multiply-add = 2); None when not counted."""
    op_type = OP_ALIASES.get(op_type, op_type)
    if op_type in ("Conv", "ConvInteger", "QLinearConv") and out and len(ins) > 1:
        weight = ins[3] if op_type == "QLinearConv" else ins[1]
        # weight [Cout, Cin/groups, k...]: each output element costs Cin/groups * prod(k) MACs
        return 2.0 * math.prod(out) * math.prod(weight[1:]) if weight else None
    if op_type in ("MatMul", "MatMulInteger", "Gemm") and out and ins and ins[0]:
        k = ins[0][0] if op_type == "Gemm" and trans_a else ins[0][-1]
        return 2.0 * math.prod(out) * k
    if op_type in _GATES and out and len(out) == 4 and ins and ins[0] and len(ins[0]) == 3:
        # X [seq, batch, input], Y [seq, directions, batch, hidden]: each gate is a matrix product of
        # [input + hidden] by [hidden] per step (from X and Y: ONNX Runtime reports its weights prepacked)
        seq, directions, batch, hidden = out
        return 2.0 * seq * directions * batch * _GATES[op_type] * hidden * (ins[0][2] + hidden)
    if op_type in _ELEMENTWISE and out:
        return float(math.prod(out))
    return None


def has_nested_compute(model: onnx.ModelProto) -> bool:
    """Whether compute ops sit inside control flow, where shape inference often cannot follow the shapes."""
    return any(node.op_type in ("Conv", "MatMul", "Gemm", "LSTM", "GRU")
               for graph in _all_graphs(model.graph)[1:] for node in graph.node)


_FLOATING = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}


def parameter_count(model: onnx.ModelProto) -> int:
    """Number of weights: elements of every initializer, and of every floating-point tensor held in a
    Constant node (some exporters keep all weights there; integer Constants are shapes and indices)."""
    total = 0
    for graph in _all_graphs(model.graph):  # weights inside If branches and Loop/Scan bodies count too
        for init in graph.initializer:
            total += int(math.prod(init.dims)) if init.dims else numpy_helper.to_array(init).size
        for node in graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for attr in node.attribute:
                    if attr.name == "value" and attr.t.data_type in _FLOATING:
                        total += int(math.prod(attr.t.dims))
    return total
