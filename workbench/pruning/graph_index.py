"""Lookups over one ONNX graph that every pruning method needs: constants, producers, consumers.

Weights in exported models live either in initializers or in ``Constant`` nodes, and a weight may
be shared by several nodes; the methods must see both forms and must never rewrite a tensor
another node still reads unchanged, so they all go through this index rather than the raw proto.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

#: Ops whose constant second input is a weight with a reduction (input-channel) axis.
WEIGHT_OPS = ("Conv", "Gemm", "MatMul")

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                onnx.TensorProto.BFLOAT16}


def attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    """An attribute's Python value, or ``default`` when the node does not set it."""
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _subgraph_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name read inside nested subgraphs (If/Loop/Scan bodies read outer names implicitly)."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            bodies = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for body in bodies:
                for inner in body.node:
                    names.update(i for i in inner.input if i)
                names |= _subgraph_names(body)
    return names


class GraphIndex:
    """Read/write access to one graph's tensors; edits go to the same proto it was built from."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in self.graph.initializer}
        self.constant_nodes: dict[str, onnx.NodeProto] = {
            n.output[0]: n for n in self.graph.node if n.op_type == "Constant" and n.output
        }
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
        self.names: dict[int, str] = {}
        for position, node in enumerate(self.graph.node):
            self.names[id(node)] = node.name or f"{node.op_type}_{position}"
            for out in node.output:
                if out:
                    self.producer[out] = node
            for slot, name in enumerate(node.input):
                if name:
                    self.consumers[name].append((node, slot))
        self.graph_outputs = {o.name for o in self.graph.output}
        self.graph_inputs = {i.name for i in self.graph.input} - set(self.initializers)
        self.subgraph_reads = _subgraph_names(self.graph)
        self._cache: dict[str, np.ndarray] = {}

    def name(self, node: onnx.NodeProto) -> str:
        """A stable display name, also for the unnamed nodes some exporters emit."""
        return self.names[id(node)]

    def is_const(self, name: str) -> bool:
        return name in self.initializers or name in self.constant_nodes

    def const(self, name: str) -> np.ndarray | None:
        """The constant's value (cached), or None when the tensor is computed at run time."""
        if name in self._cache:
            return self._cache[name]
        if name in self.initializers:
            value = numpy_helper.to_array(self.initializers[name])
        elif name in self.constant_nodes:
            node = self.constant_nodes[name]
            tensor = attribute(node, "value")
            if not isinstance(tensor, onnx.TensorProto):
                return None  # value_float(s)/value_int(s) forms: scalars, never weights
            value = numpy_helper.to_array(tensor)
        else:
            return None
        self._cache[name] = value
        return value

    def is_float_const(self, name: str) -> bool:
        if name in self.initializers:
            return self.initializers[name].data_type in _FLOAT_TYPES
        value = self.const(name)
        return value is not None and value.dtype.kind == "f"

    def uses(self, name: str) -> int:
        """How many node inputs and graph outputs read this tensor (shared weights count > 1)."""
        return len(self.consumers.get(name, [])) + (name in self.graph_outputs) + (
            name in self.subgraph_reads
        )

    def set_const(self, name: str, value: np.ndarray) -> None:
        """Replace a constant's value in place, keeping its name and dtype."""
        if name in self.initializers:
            old = self.initializers[name]
            new = numpy_helper.from_array(value.astype(numpy_helper.to_array(old).dtype, copy=False), name)
            old.CopyFrom(new)
        else:
            node = self.constant_nodes[name]
            for attr in node.attribute:
                if attr.name == "value":
                    attr.t.CopyFrom(numpy_helper.from_array(value.astype(self.const(name).dtype), name))
        self._cache[name] = value

    def add_initializer(self, name: str, value: np.ndarray) -> str:
        """Add a new initializer under a name no other tensor uses, and return that name."""
        taken = set(self.initializers) | set(self.producer) | {i.name for i in self.graph.input}
        unique, counter = name, 1
        while unique in taken:
            unique, counter = f"{name}_{counter}", counter + 1
        tensor = numpy_helper.from_array(value, unique)
        self.graph.initializer.append(tensor)
        self.initializers[unique] = self.graph.initializer[-1]
        self._cache[unique] = value
        return unique

    def remove_unused_initializers(self) -> None:
        """Drop initializers no node reads any more (the originals of cloned shared weights)."""
        read = {i for n in self.graph.node for i in n.input} | self.graph_outputs | self.subgraph_reads
        keep = [t for t in self.graph.initializer if t.name in read]
        if len(keep) != len(self.graph.initializer):
            del self.graph.initializer[:]
            self.graph.initializer.extend(keep)
            self.initializers = {t.name: t for t in self.graph.initializer}


@dataclass(frozen=True)
class WeightLayer:
    """A Conv/Gemm/MatMul whose weight is a constant: what every pruning method works on.

    ``in_axis`` is the weight axis summed over (the input channels, the axis 2:4 groups run
    along); ``out_axis`` indexes output channels.
    """

    node: onnx.NodeProto
    name: str
    op_type: str
    weight: str
    in_axis: int
    out_axis: int
    group: int = 1


def weight_layers(index: GraphIndex) -> tuple[list[WeightLayer], list[tuple[onnx.NodeProto, str]]]:
    """Layers with constant float weights, and the other weight ops with the reason they don't qualify."""
    layers: list[WeightLayer] = []
    rejected: list[tuple[onnx.NodeProto, str]] = []
    for node in index.graph.node:
        if node.op_type not in WEIGHT_OPS or node.domain not in ("", "ai.onnx"):
            continue
        weight = node.input[1] if len(node.input) > 1 else ""
        if not index.is_const(weight):
            if node.op_type == "MatMul" and index.is_const(node.input[0]):
                rejected.append((node, "the constant is the left operand (W @ x), which is not supported"))
            else:
                rejected.append((node, "its weights are computed at run time, not stored constants"))
            continue
        if not index.is_float_const(weight):
            rejected.append((node, "its weights are not floating point (already quantized?)"))
            continue
        value = index.const(weight)
        name = index.name(node)
        if node.op_type == "Conv":
            if value.ndim < 3:
                rejected.append((node, f"Conv weight has unexpected rank {value.ndim}"))
                continue
            layers.append(WeightLayer(node, name, "Conv", weight, 1, 0, int(attribute(node, "group", 1))))
        elif node.op_type == "Gemm":
            trans_b = int(attribute(node, "transB", 0))
            layers.append(WeightLayer(node, name, "Gemm", weight, 1 if trans_b else 0, 0 if trans_b else 1))
        else:
            if value.ndim != 2:
                rejected.append((node, f"MatMul weight has rank {value.ndim}; only 2-D weights are supported"))
                continue
            layers.append(WeightLayer(node, name, "MatMul", weight, 0, 1))
    return layers, rejected


def sparsity(value: np.ndarray) -> float:
    """Fraction of exact zeros."""
    return float(np.count_nonzero(value == 0)) / value.size if value.size else 0.0
