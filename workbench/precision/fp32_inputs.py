"""Layers kept in FP32 compute on FP32 inputs, not on the Q/DQ copy a quantized neighbour asked for.

``quantize_static(nodes_to_exclude=...)`` leaves the named node unquantized, but the tensor it reads
is often still quantized: its producer (a Gemm, a Conv) quantizes its own output, and pass-through
ops (Relu, MaxPool, Flatten) between them run on the rounded copy. A layer kept in FP32 because its
input has an outlier channel then still sees that channel's rounding, and keeping it changes
nothing. After quantization, the excluded nodes (and the pass-through ops that feed them) are
rewired to the tensors before Quantize/Dequantize; pairs nobody reads any more are dropped.

The quantizer removes a ReLU that follows a Conv or Gemm (the U8 output grid clamps at zero), and
the tensor before Quantize keeps the ReLU's name while holding values before it; that ReLU is put
back for the kept layer. A tensor whose producer changed in any other way stays quantized.
"""

from __future__ import annotations

from pathlib import Path

import onnx

#: Ops that move or clip values without arithmetic of their own: the kept layer's real input lies above them.
PASS_THROUGH = {"Relu", "Clip", "MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity"}


def feed_fp32_inputs(path: Path, exclude_nodes: list[str], before: Path) -> int:
    """Rewire the kept nodes of the Q/DQ model at ``path`` in place; returns how many inputs were rewired.

    ``before`` is the model the quantizer was given, to tell which producers it changed.
    """
    model = onnx.load(str(path))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    original = {out: node.op_type for node in onnx.load(str(before), load_external_data=False).graph.node
                for out in node.output}
    rewired = 0

    def before_qdq(name: str) -> str | None:
        dq = producers.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        q = producers.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            return None
        tensor = q.input[0]
        now = producers[tensor].op_type if tensor in producers else None
        if now == original.get(tensor):
            return tensor
        if original.get(tensor) == "Relu":
            return put_back_relu(tensor)
        return None

    def put_back_relu(tensor: str) -> str:
        restored = f"{tensor}_fp32"
        if restored not in producers:
            relu = onnx.helper.make_node("Relu", [tensor], [restored], name=f"{tensor}_relu_fp32")
            graph.node.insert(list(graph.node).index(producers[tensor]) + 1, relu)
            producers[restored] = relu
        return restored

    def unquantize(node: onnx.NodeProto, inputs: range, seen: set[str]) -> None:
        nonlocal rewired
        for index in inputs:
            original = before_qdq(node.input[index])
            if original is not None:
                node.input[index] = original
                rewired += 1
            source = producers.get(node.input[index])
            if source is not None and source.op_type in PASS_THROUGH and source.name not in seen:
                seen.add(source.name)
                unquantize(source, range(1), seen)

    kept = set(exclude_nodes)
    seen: set[str] = set()
    for node in graph.node:
        if node.name in kept:
            unquantize(node, range(len(node.input)), seen)
    if rewired:
        _drop_unread_qdq(graph)
        onnx.save(model, str(path))
    return rewired


def _drop_unread_qdq(graph: onnx.GraphProto) -> None:
    outputs = {o.name for o in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(out in read for out in n.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)
