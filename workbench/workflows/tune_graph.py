"""Which nodes a search may keep in higher precision, read from the graphs themselves.

Node names are those of the model the quantizer saw (the cached quantization pre-pass), since
``nodes_to_exclude`` is matched against them.
"""

from __future__ import annotations

import onnx

from workbench.model.graph_order import consumers
from workbench.model.op_types import COMPUTE_OP_TYPES, QDQ_OP_TYPES

#: Op types whose INT8 error is often out of proportion to their cost.
FRAGILE_OP_TYPES = ("Softmax", "LayerNormalization", "Gelu", "Erf", "Sigmoid", "Exp")
#: Smooth activations (GELU as Erf or Tanh, SiLU and hard-swish as sigmoids) a transformer's FFN applies before its
#: output projection.
SMOOTH_ACTIVATIONS = ("Erf", "Gelu", "FastGelu", "Tanh", "Sigmoid", "HardSigmoid", "HardSwish")
#: Where the walk back from a matrix product ends: the layer before it, or a normalisation.
_BOUNDARIES = (*COMPUTE_OP_TYPES, "Softmax", "LayerNormalization", "ReduceMean")
#: How many element-wise ops back from a matrix product its activation may be (GELU written out is five).
ACTIVATION_HOPS = 6


def compute_depth_to_output(graph: onnx.GraphProto) -> dict[str, int]:
    """For each node, the fewest compute layers (Conv, Gemm, MatMul) between it and a graph output, itself included."""
    users = consumers(graph)
    outputs = {o.name for o in graph.output}
    depth: dict[str, int] = {}
    for node in reversed(list(graph.node)):  # graphs are stored in topological order
        own = 1 if node.op_type in COMPUTE_OP_TYPES else 0
        best = None
        for name in node.output:
            if name in outputs:
                best = 0 if best is None else min(best, 0)
            for user in users.get(name, []):
                if user.name in depth:
                    best = depth[user.name] if best is None else min(best, depth[user.name])
        if best is not None:
            depth[node.name] = best + own
    return depth


def fragile_nodes(model: onnx.ModelProto, task: str | None) -> dict[str, list[str]]:
    """Nodes often worth keeping in FP32, by reason: fragile op types, first conv, classifier, a detector's head."""
    graph = model.graph
    reasons: dict[str, list[str]] = {}
    fragile = [n.name for n in graph.node if n.op_type in FRAGILE_OP_TYPES and n.name]
    if fragile:
        reasons["fragile op types (" + ", ".join(sorted({n.op_type for n in graph.node
                                                         if n.name in fragile})) + ")"] = fragile
    first = next((n.name for n in graph.node if n.op_type == "Conv" and n.name), None)
    if first:
        reasons["first conv"] = [first]
    depth = compute_depth_to_output(graph)
    if task == "detection":
        head = [n.name for n in graph.node if n.name and depth.get(n.name, 99) <= 2 and n.op_type not in QDQ_OP_TYPES]
        if head:
            reasons["the last layers before the detection decode"] = head
    else:
        last = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul") and n.name and depth.get(n.name) == 1]
        if last and task in (None, "classification"):
            reasons["classifier Gemm"] = last
    return reasons


def activation_fed_products(model: onnx.ModelProto) -> list[str]:
    """The matrix products whose input a smooth activation made, a few element-wise ops back: a transformer's FFN
    output projections, in graph order. The activation's output carries the outliers an INT8 activation scale loses
    most on (Bondarenko et al., 2021, "Understanding and overcoming the challenges of efficient transformer
    quantization"): on a BERT-base encoder, keeping these 12 of 96 products out of INT8 is what brings OpenVINO's INT8
    within a 0.99 sentence cosine, while a node fall-back by contiguous groups of layers cannot find them at all."""
    made_by = {out: node for node in model.graph.node for out in node.output}
    found = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or not node.name or not node.input:
            continue
        frontier, seen, fed = [node.input[0]], set(), False
        for _ in range(ACTIVATION_HOPS):
            before = [made_by[name] for name in frontier if name in made_by and made_by[name].name not in seen]
            seen |= {n.name for n in before}
            fed = fed or any(n.op_type in SMOOTH_ACTIVATIONS for n in before)
            frontier = [name for n in before if n.op_type not in _BOUNDARIES for name in n.input]
        if fed:
            found.append(node.name)
    return found


def changed_by_exclusion(prepared: onnx.ModelProto, built: onnx.ModelProto) -> list[str]:
    """Nodes of ``prepared`` the quantizer changed (replaced, or fed by a DequantizeLinear), in graph order.

    Only these can be kept in higher precision: excluding any other node builds the same file.
    """
    produced_by = {out: node for node in built.graph.node for out in node.output}
    built_by_name = {node.name: node for node in built.graph.node}
    changed = []
    for node in prepared.graph.node:
        if not node.name or node.op_type in QDQ_OP_TYPES:
            continue
        twin = built_by_name.get(node.name)
        replaced = twin is None or twin.op_type != node.op_type
        if replaced or any(name in produced_by and produced_by[name].op_type == "DequantizeLinear"
                           for name in twin.input):
            changed.append(node.name)
    return changed


def has_weight_matmul(model: onnx.ModelProto) -> bool:
    """Whether any MatMul/Gemm multiplies by a stored weight: what dynamic INT8 quantizes."""
    weights = {init.name for init in model.graph.initializer}
    weights |= {out for n in model.graph.node if n.op_type == "Constant" for out in n.output}
    return any(n.op_type in ("MatMul", "Gemm") and any(i in weights for i in n.input) for n in model.graph.node)
