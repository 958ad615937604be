"""Which layers of a model weight-only quantization applies to, and which of them stay out of it.

Weight-only quantization stores a constant weight matrix in 8 or 4 bits per block; only MatMul and
Gemm layers with a constant 2-D weight have one (convolutions are not covered by either engine's
tool). The embeddings (a Gather over a constant table) and the last matrix layer, whose errors reach
the output undamped, are kept by default, as NNCF does. This module only reads the graph: the
writers (ONNX Runtime's quantizer, NNCF) take the plan it makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from workbench.errors import BuildError
from workbench.model.flops import node_flops

#: Names in a "layers kept" list that stand for a kind of layer rather than one node.
KEEP_WORDS = ("embeddings", "last")
DEFAULT_KEEP = KEEP_WORDS
#: Below this share of the model's multiply-adds, weight-only shrinks the file but cannot speed it up.
SMALL_COMPUTE_SHARE = 0.10
REFUSAL = "this model has no layer that weight-only quantization applies to"


@dataclass(frozen=True)
class WeightLayer:
    """A MatMul/Gemm node whose weight is a constant ``[K, N]`` matrix (as the MatMul reads it)."""

    name: str
    op_type: str
    weight: str
    k: int
    n: int
    #: A Gemm with ``transB=1`` stores the weight as ``[N, K]``.
    transposed: bool = False

    @property
    def size(self) -> int:
        return self.k * self.n


@dataclass(frozen=True)
class LayerPlan:
    """The layers at the precision's bits, the layers kept (with their precision) and why."""

    quantized: tuple[WeightLayer, ...]
    kept: tuple[WeightLayer, ...]
    #: The embedding tables kept (Gather nodes), when the embeddings are.
    embeddings: tuple[str, ...]
    #: The last weight layer, when it is kept.
    last: str | None

    def names(self) -> list[str]:
        return [layer.name for layer in self.quantized]


def _initializers(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {init.name: init for init in model.graph.initializer}


def _attr(node: onnx.NodeProto, name: str, default: float) -> float:
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give unnamed nodes a name (in place): the quantizers select and exclude layers by node name."""
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    return model


def weight_layers(model: onnx.ModelProto) -> list[WeightLayer]:
    """MatMul/Gemm nodes with a constant 2-D weight, in graph (topological) order (nodes named first)."""
    inits = _initializers(model)
    found = []
    for node in model.graph.node:
        name = node.name
        if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in inits:
            dims = list(inits[node.input[1]].dims)
            if len(dims) == 2:
                found.append(WeightLayer(name, "MatMul", node.input[1], dims[0], dims[1]))
        elif node.op_type == "Gemm" and len(node.input) > 1 and node.input[1] in inits and not _attr(node, "transA", 0):
            dims = list(inits[node.input[1]].dims)
            if len(dims) == 2:
                transposed = bool(_attr(node, "transB", 0))
                k, n = (dims[1], dims[0]) if transposed else (dims[0], dims[1])
                found.append(WeightLayer(name, "Gemm", node.input[1], k, n, transposed))
    return found


def embedding_tables(model: onnx.ModelProto) -> list[str]:
    """Gather nodes that look rows up in a constant 2-D table: token and position embeddings."""
    inits = _initializers(model)
    return [node.name for node in model.graph.node
            if node.op_type == "Gather" and node.input and node.input[0] in inits
            and len(inits[node.input[0]].dims) == 2]


def plan_layers(model: onnx.ModelProto, keep: Sequence[str], precision: str) -> LayerPlan:
    """Split the weight layers into quantized and kept; refuse, in one sentence, when none is left.

    ``keep`` holds node names and the words ``embeddings`` and ``last``. A name that is no weight layer
    is refused rather than ignored: a typo would otherwise quantize the layer the user meant to keep."""
    layers = weight_layers(model)
    by_name = {layer.name: layer for layer in layers}
    unknown = [name for name in keep if name not in by_name and name not in KEEP_WORDS]
    if unknown:
        raise BuildError(f"Layers to keep {', '.join(unknown)} are not MatMul/Gemm layers with a constant weight "
                         "in this model.", "Use `workbench inspect` for the layer names, or the words "
                         f"{' and '.join(KEEP_WORDS)}.")
    kept_names = {name for name in keep if name in by_name}
    if "last" in keep and layers:
        kept_names.add(layers[-1].name)
    quantized = tuple(layer for layer in layers if layer.name not in kept_names)
    if not quantized:
        raise BuildError(f"{refusal_reason(model, layers, kept_names)}.", "Use int8 or int8-dynamic for this "
                         f"model, or fp16; {precision} is for transformers, recurrent cells and large "
                         "classifier heads.")
    embeddings = tuple(embedding_tables(model)) if "embeddings" in keep else ()
    return LayerPlan(quantized, tuple(by_name[n] for n in by_name if n in kept_names), embeddings,
                     layers[-1].name if "last" in keep else None)


def refusal_reason(model: onnx.ModelProto, layers: list[WeightLayer], kept: set[str]) -> str:
    """The one sentence: no weight layer at all, or only ones the user (or the default) keeps."""
    ops = {node.op_type for node in model.graph.node}
    where = "its compute is in convolutions" if ops & {"Conv", "ConvTranspose"} else \
        "it has no MatMul or Gemm with a constant weight"
    if not layers:
        return f"{REFUSAL}: {where}"
    return (f"{REFUSAL}: {where}, and its only matrix layers ({', '.join(sorted(kept))}) are kept "
            "(the last layer is kept by default; --quant-option keep_last=false quantizes it)")


def compute_share(model: onnx.ModelProto, names: Sequence[str]) -> float | None:
    """The share of the model's multiply-adds done by ``names`` (None when shapes are unknown)."""
    flops = node_flops(model)
    total = sum(flops.values())
    if not total or not all(name in flops for name in names):
        return None
    return sum(flops[name] for name in names) / total


def int4_sensitivity(model: onnx.ModelProto, layers: Sequence[WeightLayer], block_size: int) -> dict[str, float]:
    """Relative error of each layer's weight rounded to 4 bits per block (data-free, as NNCF ranks layers
    without data): the layers where 4 bits lose most are the ones a ratio below 1 leaves in 8 bits."""
    inits = _initializers(model)
    scores = {}
    for layer in layers:
        w = numpy_helper.to_array(inits[layer.weight]).astype(np.float32)
        w = w.T if layer.transposed else w
        k = w.shape[0]
        pad = (-k) % block_size
        blocks = np.pad(w, ((0, pad), (0, 0))).reshape(-1, min(block_size, k + pad), w.shape[1])
        low, high = blocks.min(axis=1, keepdims=True), blocks.max(axis=1, keepdims=True)
        scale = np.where(high > low, (high - low) / 15.0, 1.0)
        rounded = np.clip(np.round((blocks - low) / scale), 0, 15) * scale + low
        error = np.linalg.norm((rounded - blocks).reshape(-1)[: w.size])
        scores[layer.name] = float(error / max(float(np.linalg.norm(w)), 1e-12))
    return scores


def split_by_ratio(layers: Sequence[WeightLayer], sensitivity: dict[str, float],
                   ratio: float) -> tuple[list[WeightLayer], list[WeightLayer]]:
    """(4-bit, 8-bit): the least sensitive layers in 4 bits until ``ratio`` of the weights are, as NNCF's
    ``ratio`` counts them (by weight elements, not by layer count)."""
    total = sum(layer.size for layer in layers)
    four, eight, taken = [], [], 0
    for layer in sorted(layers, key=lambda item: sensitivity[item.name]):
        if taken + layer.size <= ratio * total + 1e-9:
            four.append(layer)
            taken += layer.size
        else:
            eight.append(layer)
    order = {layer.name: i for i, layer in enumerate(layers)}
    return sorted(four, key=lambda item: order[item.name]), sorted(eight, key=lambda item: order[item.name])
