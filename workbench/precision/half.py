"""FP16 and BF16 variants: ONNX Runtime's float16 converter, I/O types kept, fragile ops in FP32.

BF16 has no converter of its own in ONNX Runtime, so it reuses the FP16 converter's placement
(the same casts at the same places) and then re-types that region as BF16, taking the weights
from the original FP32 values so nothing is rounded twice.

The converter appends its input casts after the nodes that read them, and where one tensor feeds
two blocked nodes some ONNX Runtime releases emit the same Cast twice (same output name) or repeat
a node name; ONNX Runtime refuses the duplicates and TensorRT the order, so every converted graph
is put back in topological order, with repeated identical nodes dropped and node names unique.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import ml_dtypes
import numpy as np
import onnx
from onnx import numpy_helper

from workbench.model.graph_order import topological_order

#: Ops whose FP16 range or precision commonly breaks results: reductions and exponentials
#: overflow (65504 max), and normalisations lose the small variances they divide by.
FRAGILE_OPS = [
    "Pow", "Exp", "Log", "Sqrt", "Reciprocal", "ReduceMean", "ReduceSum", "ReduceSumSquare",
    "ReduceL2", "ReduceLogSumExp", "LayerNormalization", "InstanceNormalization",
]


def convert_half(
    model: onnx.ModelProto,
    dtype: str,
    blocked_ops: Iterable[str] = (),
    blocked_nodes: Iterable[str] = (),
) -> onnx.ModelProto:
    """Convert to ``dtype`` ("fp16" or "bf16") keeping graph I/O in FP32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    half = convert_float_to_float16(
        copy.deepcopy(model),
        keep_io_types=True,
        op_block_list=sorted({*DEFAULT_OP_BLOCK_LIST, *FRAGILE_OPS, *blocked_ops}),
        node_block_list=sorted(set(blocked_nodes)),
    )
    _tidy(half.graph)
    if dtype == "fp16":
        return half
    return _retype_to_bf16(half, model)


def _tidy(graph: onnx.GraphProto) -> None:
    """Reorder nodes topologically (stable: ties keep their order) and make node names unique."""
    nodes, seen_nodes = [], set()
    for node in graph.node:
        key = (node.op_type, tuple(node.input), tuple(node.output),
               tuple(a.SerializeToString() for a in node.attribute))
        if key not in seen_nodes:  # the same computation of the same tensor, emitted twice
            seen_nodes.add(key)
            nodes.append(node)
    # A cycle leaves the order alone: the checker then says what is wrong.
    order = topological_order(nodes) or nodes
    seen: set[str] = set()
    sorted_nodes = []
    for original in order:
        node = copy.copy(original)
        name, suffix = node.name, 1
        while name and name in seen:
            name, suffix = f"{node.name}_{suffix}", suffix + 1
        node.name = name
        seen.add(name)
        sorted_nodes.append(node)
    del graph.node[:]
    graph.node.extend(sorted_nodes)


def _retype_to_bf16(half: onnx.ModelProto, original: onnx.ModelProto) -> onnx.ModelProto:
    fp32_weights = {init.name: init for init in original.graph.initializer}
    fp16 = onnx.TensorProto.FLOAT16
    bf16 = onnx.TensorProto.BFLOAT16

    def to_bf16(tensor: onnx.TensorProto) -> onnx.TensorProto:
        source = fp32_weights.get(tensor.name, tensor)
        values = numpy_helper.to_array(source).astype(np.float32).astype(ml_dtypes.bfloat16)
        return numpy_helper.from_array(values, tensor.name)

    graph = half.graph
    for index, init in enumerate(graph.initializer):
        if init.data_type == fp16:
            graph.initializer[index].CopyFrom(to_bf16(init))
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "to" and attr.i == fp16:
                attr.i = bf16
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == fp16:
                attr.t.CopyFrom(to_bf16(attr.t))
    for value in [*graph.value_info, *graph.input, *graph.output]:
        if value.type.tensor_type.elem_type == fp16:
            value.type.tensor_type.elem_type = bf16
    return half
