"""Copies of an ONNX graph for its structure, without the values of its weights.

What reads a graph for its nodes, types and shapes needs no weights, and shape inference reads only the small
constants (shapes, axes); embedded in the file, a BERT-base encoder's weights are 0.4 GB held for nothing. The copy
is built tensor by tensor, so the weights are never copied only to be cleared (a parsed message also keeps the
memory of a cleared field until it is freed whole).
"""

from __future__ import annotations

import math

import onnx

#: Initializers larger than this (elements) are weights: a copy of the graph kept for its structure drops their values.
WEIGHT_VALUES = 4096

_REPEATED = ("node", "input", "output", "value_info", "sparse_initializer", "quantization_annotation",
             "metadata_props")


def graph_without_weights(graph: onnx.GraphProto, larger_than: int = WEIGHT_VALUES,
                          external: bool = True) -> onnx.GraphProto:
    """A copy of ``graph`` whose initializers of more than ``larger_than`` elements keep name, type, shape and
    (``external``) their external-data reference, not their values; ``graph`` itself is untouched. Without the
    reference they read as tensors stored in the file (shape inference then never looks for a data file)."""
    copy = onnx.GraphProto()
    for field in ("name", "doc_string"):
        if graph.HasField(field):
            setattr(copy, field, getattr(graph, field))
    for field in _REPEATED:
        getattr(copy, field).extend(getattr(graph, field))
    for tensor in graph.initializer:
        if math.prod(tensor.dims) <= larger_than:
            copy.initializer.add().CopyFrom(tensor)
            continue
        kept = copy.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
        if external:
            kept.data_location = tensor.data_location
            kept.external_data.extend(tensor.external_data)
    return copy


def drop_weight_values(proto: onnx.ModelProto, larger_than: int = WEIGHT_VALUES) -> onnx.ModelProto:
    """A copy of ``proto`` (opsets, metadata, functions kept) whose graph is ``graph_without_weights``."""
    copy = onnx.ModelProto()
    for field, value in proto.ListFields():
        if field.name != "graph":
            copy.MergeFrom(onnx.ModelProto(**{field.name: value}))
    copy.graph.CopyFrom(graph_without_weights(proto.graph, larger_than))
    return copy
