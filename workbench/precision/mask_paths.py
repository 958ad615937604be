"""Floating-point arithmetic that only carries an attention mask, found so that quantizers leave it alone.

Exported transformers turn their integer ``attention_mask`` input into an additive float mask: BERT-style
models compute ``(1 - Cast(mask)) * lowest`` (float32's lowest value, or -10000), MPNet a
``Where(mask, 0, lowest)``, and the mask is added to every layer's attention scores before the Softmax.
A static quantizer calibrates that Add's output and the Softmax's input to a range that reaches the
lowest value, so one 8-bit scale maps every real score to zero and attention goes flat (MiniLM's sentence
embeddings fall to cosine 0.67 against FP32). These nodes do no work worth quantizing, so they are found
by walking the graph from the integer inputs and kept in FP32 by name, in both quantizers, as
``precision.index_paths`` does for index arithmetic.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from workbench.model.graph_order import consumers
from workbench.model.op_types import COMPUTE_OP_TYPES
from workbench.precision.index_paths import float_tensors

#: A constant this large in a mask's arithmetic makes it additive: the masked scores are pushed out of reach.
ADDITIVE_MAGNITUDE = 1e4
#: Element-wise and layout ops through which a float tensor still only carries the mask.
_MASK_OPS = frozenset({
    "Cast", "Sub", "Mul", "Add", "Div", "Neg", "Where", "Unsqueeze", "Squeeze", "Reshape", "Expand",
    "Transpose", "Flatten", "Clip", "Max", "Min", "ReduceSum", "ReduceMax", "ReduceMin", "Tile", "Concat",
    "Identity", "Abs", "Reciprocal", "Sqrt", "Pow",
})
#: Ops between the Add that meets the scores and the Softmax that reads them: they carry the mask's extremes.
_SCORE_PATH_OPS = frozenset({"Add", "Sub", "Reshape", "Transpose", "Cast", "Unsqueeze", "Squeeze", "Expand",
                             "Identity"})
#: Integer ops whose output describes a tensor's shape, not its values: the mask stops there.
_SHAPE_OPS = frozenset({"Shape", "Size"})
_SMALL = 64


def _small_constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Values of the small constants (initializers and Constant nodes), the only ones a mask's arithmetic uses."""
    values = {init.name: init for init in graph.initializer if int(np.prod(init.dims)) <= _SMALL}
    for node in graph.node:
        if node.op_type == "Constant":
            tensor = next((attr.t for attr in node.attribute if attr.name == "value"), None)
            if tensor is not None and int(np.prod(tensor.dims)) <= _SMALL:
                values[node.output[0]] = tensor
    out = {}
    for name, tensor in values.items():
        try:
            out[name] = numpy_helper.to_array(tensor)
        except Exception:  # external data not loaded: such a tensor is not a mask constant
            continue
    return out


def _traced(model: onnx.ModelProto) -> tuple[set[str], set[str]]:
    """(mask-only float nodes, additive mask tensors) found walking forward in graph order."""
    graph = model.graph
    floats = float_tensors(model)
    small = _small_constants(graph)
    constants = {init.name for init in graph.initializer} | set(small)
    tainted = {inp.name for inp in graph.input if inp.name not in floats}  # integer and bool inputs
    masks: set[str] = set()
    additive: set[str] = set()
    mask_nodes: set[str] = set()
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if not any(name in tainted or name in masks for name in inputs) or node.op_type in _SHAPE_OPS:
            continue
        outputs = [name for name in node.output if name]
        if not any(name in floats for name in outputs):
            tainted.update(outputs)  # integer or bool arithmetic on the mask
            continue
        mixed = any(name in floats and name not in masks and name not in constants for name in inputs)
        if node.op_type not in _MASK_OPS or node.op_type in COMPUTE_OP_TYPES or mixed or not node.name:
            continue
        masks.update(outputs)
        mask_nodes.add(node.name)
        large = any(name in small and small[name].size and float(np.max(np.abs(small[name]))) >= ADDITIVE_MAGNITUDE
                    for name in inputs)
        if large or any(name in additive for name in inputs):
            additive.update(outputs)
    return mask_nodes, additive


def mask_arithmetic(model: onnx.ModelProto) -> list[str]:
    """The nodes that only carry a mask drawn from an integer or bool graph input, and, for an additive mask
    (a constant of magnitude >= 1e4 in its arithmetic), the nodes from where it meets the scores up to and
    including the Softmax that reads them, in graph order. Matrix products are never listed."""
    mask_nodes, additive = _traced(model)
    users = consumers(model.graph)
    listed = set(mask_nodes)
    for tensor in additive:
        for user in users.get(tensor, []):
            if user.name and user.name not in mask_nodes and user.op_type in _SCORE_PATH_OPS:
                listed |= _to_softmax(user, users)
    return [node.name for node in model.graph.node if node.name in listed]


def _to_softmax(start: onnx.NodeProto, users: dict[str, list[onnx.NodeProto]]) -> set[str]:
    """``start`` and the score-path nodes after it, up to and including the Softmax they reach."""
    found, front = {start.name}, [start]
    while front:
        node = front.pop()
        if node.op_type == "Softmax":
            continue
        for user in (u for out in node.output for u in users.get(out, [])):
            if user.name and user.name not in found and (user.op_type in _SCORE_PATH_OPS or user.op_type == "Softmax"):
                found.add(user.name)
                front.append(user)
    return found


def mask_arithmetic_note(nodes: list[str], quantizer: str) -> list[str]:
    """The run's note on the nodes kept out of quantization because they carry the attention mask."""
    if not nodes:
        return []
    shown = ", ".join(nodes[:6]) + (f" (and {len(nodes) - 6} more)" if len(nodes) > 6 else "")
    return [f"kept in FP32 ({quantizer}): {len(nodes)} node(s) of floating-point arithmetic that carries the "
            f"attention mask, whose range (down to -1e4 or float32's lowest) one INT8 scale cannot share "
            f"with the attention scores: {shown}"]
