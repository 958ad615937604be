"""Parse TensorRT layer information into per-layer facts, and join them with layer times.

``trtexec --exportLayerInfo`` and ``IEngineInspector.get_engine_information(
LayerInformationFormat.JSON)`` write the same document: ``{"Layers": [...], "Bindings": [...]}``
(TensorRT 10), where TensorRT 11 replaces the ``Bindings`` names with ``"I/O Tensors"`` records.
Both the trtexec importer and the TensorRT backend's profiler go through this one parser, so a
profile taken on someone else's GPU and one taken here give the same table.

With ``--profilingVerbosity=layer_names_only`` (or an inspector on such an engine) each layer is
a bare string; with ``detailed`` it is a dict with tensors, formats, weights and the tactic.
Facts a bare name cannot give (precision, FLOPs, bytes) stay "unknown"/NaN rather than guessed.

Choices worth knowing:

* precision: a layer with weights (convolution, fully connected) reports its weights' type,
  because an INT8 convolution that writes FP16 still multiplies in INT8; any other layer
  reports the type of what it writes, or "mixed" when its outputs differ. A reformat therefore
  reports its destination type. FP32 convolutions that TensorRT ran as TF32 stay "FP32": the
  layer info does not say so reliably (only some tactic names do).
* FLOPs: 2 x multiply-accumulates of convolution, deconvolution and fully-connected layers, from
  the tensor dimensions (batch dimension included, so per inference of the whole batch),
  OutMaps, Kernel and Groups; bias and fused activations are not counted. NaN elsewhere.
* bytes: logical sizes of every input and output tensor plus weights and bias, without the
  channel padding of vectorized formats; NaN when a dimension is unknown.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.profiles.layer_table import make_layer_table
from workbench.profiles.trt_names import guess_kind, is_copy_node, nodes_from_metadata, onnx_nodes_from_name


class TrtFileError(WorkbenchError):
    """A TensorRT profile or layer-info file cannot be read as one."""


class LayerInfoMismatch(TrtFileError):
    """The layer info describes a different engine than the profile timed."""


# Order matters: the first pattern that matches a format or weight-type string wins.
_DTYPE_PATTERNS = (
    (re.compile(r"\b(bf16|bfloat16)\b", re.I), "BF16"),
    (re.compile(r"\b(fp16|half)\b", re.I), "FP16"),
    (re.compile(r"\b(fp32|float)\b", re.I), "FP32"),
    (re.compile(r"\b(fp8|e4m3|e5m2)\b", re.I), "FP8"),
    (re.compile(r"\b(fp4|e2m1)\b", re.I), "FP4"),
    (re.compile(r"\buint8\b", re.I), "UINT8"),
    (re.compile(r"\bint8\b", re.I), "INT8"),
    (re.compile(r"\bint4\b", re.I), "INT4"),
    (re.compile(r"\bint32\b", re.I), "INT32"),
    (re.compile(r"\bint64\b", re.I), "INT64"),
    (re.compile(r"\bbool\b", re.I), "BOOL"),
)
_DTYPE_BYTES = {
    "FP32": 4.0, "FP16": 2.0, "BF16": 2.0, "FP8": 1.0, "FP4": 0.5, "UINT8": 1.0,
    "INT8": 1.0, "INT4": 0.5, "INT32": 4.0, "INT64": 8.0, "BOOL": 1.0,
}
_WEIGHTED_KINDS = frozenset({"Convolution", "Deconvolution", "FullyConnected"})


@dataclass(frozen=True)
class LayerFacts:
    """What the layer info says about one engine layer, in layer-table terms."""

    name: str
    op_type: str
    precision: str = "unknown"
    onnx_nodes: tuple[str, ...] = ()
    flops: float = math.nan
    bytes: float = math.nan
    sparse: bool = False
    layer_type: str | None = None
    tactic: str | None = None


@dataclass
class LayerInfo:
    """All layers of one engine, in engine order."""

    layers: list[LayerFacts]
    bindings: list[str] = field(default_factory=list)
    detailed: bool = False
    batch: int | None = None

    def __post_init__(self) -> None:
        self._by_name = {}
        for facts in self.layers:
            self._by_name.setdefault(facts.name, facts)

    @property
    def sparse_layers(self) -> list[str]:
        """Layers whose kernels use structured sparsity (what ``--sparsity`` bought)."""
        return [facts.name for facts in self.layers if facts.sparse]

    def lookup(self, name: str) -> LayerFacts | None:
        """Facts for a profiled layer; a bare number is a layer index (verbosity NONE)."""
        facts = self._by_name.get(name)
        if facts is None and name.isdigit() and int(name) < len(self.layers):
            facts = self.layers[int(name)]
        return facts


def parse_layer_info(document: Mapping[str, Any] | str, known_nodes: Collection[str] | None = None) -> LayerInfo:
    """Parse an ``--exportLayerInfo`` / engine-inspector JSON document (dict or JSON text).

    ``known_nodes``: the ONNX model's node names, when at hand, to map fused names exactly.
    """
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise TrtFileError(
                f"The layer information is not JSON ({exc.msg} at line {exc.lineno}).",
                "Pass the output of trtexec --exportLayerInfo or of the engine inspector in JSON format.",
            ) from None
    if not isinstance(document, Mapping) or not isinstance(document.get("Layers"), list):
        raise TrtFileError(
            "The layer information has no 'Layers' list, so it is not TensorRT layer information.",
            "Pass the file written by trtexec --exportLayerInfo (with --profilingVerbosity=detailed "
            "for precisions and FLOPs).",
        )
    layers: list[LayerFacts] = []
    for index, entry in enumerate(document["Layers"]):
        if isinstance(entry, str):
            layers.append(facts_from_name(entry, known_nodes))
        elif isinstance(entry, Mapping) and isinstance(entry.get("Name"), str):
            layers.append(_facts_from_detail(entry, known_nodes))
        else:
            raise TrtFileError(
                f"Layer {index} of the layer information is neither a name nor a layer record.",
                "Re-export it with trtexec --exportLayerInfo; the file may be truncated or edited.",
            )
    bindings = _io_names(document)
    detailed = any(isinstance(entry, Mapping) and "Inputs" in entry for entry in document["Layers"])
    return LayerInfo(layers, bindings, detailed, _batch(document["Layers"], bindings))


def facts_from_name(name: str, known_nodes: Collection[str] | None = None) -> LayerFacts:
    """Facts a layer name alone supports; used when there is no detailed layer info."""
    return LayerFacts(name=name, op_type=guess_kind(name), onnx_nodes=tuple(onnx_nodes_from_name(name, known_nodes)))


def trt_layer_table(
    times_ms: Iterable[tuple[str, float]],
    info: LayerInfo | None,
    *,
    strict: bool = True,
    known_nodes: Collection[str] | None = None,
) -> pd.DataFrame:
    """Layer table from (layer name, time) pairs in engine order, enriched by the layer info.

    ``strict``: a layer missing from the layer info means the two files come from different
    engines, so raise; the live profiler passes False and falls back to the name.
    """
    rows, missing = [], []
    for name, ms in times_ms:
        facts = info.lookup(name) if info is not None else None
        if facts is None:
            if info is not None and strict:
                missing.append(name)
                continue
            facts = facts_from_name(name, known_nodes)
        rows.append(
            {
                "name": name,
                "onnx_nodes": list(facts.onnx_nodes),
                "op_type": facts.op_type,
                "precision": facts.precision,
                "time_ms": float(ms),
                "flops": facts.flops,
                "bytes": facts.bytes,
            }
        )
    if missing:
        shown = ", ".join(repr(name) for name in missing[:3])
        raise LayerInfoMismatch(
            f"{len(missing)} profiled layer(s) are not in the layer information (e.g. {shown}), "
            "so the two files describe different engines.",
            "Use the --exportLayerInfo file from the same trtexec run as the profile, or leave it out.",
        )
    return make_layer_table(rows)


def dtype_of(text: str | None) -> str | None:
    """"Channel major FP16 format where channel % 8 == 0" -> "FP16"; "Int8" -> "INT8"."""
    if not text:
        return None
    for pattern, dtype in _DTYPE_PATTERNS:
        if pattern.search(text):
            return dtype
    return None


def _facts_from_detail(layer: Mapping[str, Any], known_nodes: Collection[str] | None) -> LayerFacts:
    name = layer["Name"]
    kind = _kind(layer)
    nodes = nodes_from_metadata(layer.get("Metadata"))
    if not nodes and layer.get("Origin") != "REFORMAT":
        nodes = onnx_nodes_from_name(name, known_nodes)
    tactic = layer.get("TacticName")
    return LayerFacts(
        name=name,
        op_type=kind,
        precision=_precision(layer, kind),
        onnx_nodes=tuple(nodes),
        flops=_flops(layer, kind),
        bytes=_bytes(layer),
        sparse=bool(layer.get("HasSparseWeights")) or "sparse" in str(tactic or "").lower(),
        layer_type=layer.get("LayerType"),
        tactic=tactic,
    )


def _kind(layer: Mapping[str, Any]) -> str:
    if is_copy_node(layer["Name"]) or layer.get("Origin") == "REFORMAT":
        return "Reformat"
    for key in ("ParameterType", "LayerType"):
        value = layer.get(key)
        if isinstance(value, str) and value:
            return value
    return guess_kind(layer["Name"])


def _precision(layer: Mapping[str, Any], kind: str) -> str:
    weights = layer.get("Weights")
    if kind in _WEIGHTED_KINDS and isinstance(weights, Mapping) and weights.get("Count"):
        weight_type = dtype_of(str(weights.get("Type", "")))
        if weight_type:
            return weight_type
    types = {dtype_of(t.get("Format/Datatype")) for t in _tensors(layer, "Outputs")}
    types.discard(None)
    if not types:
        return "unknown"
    return types.pop() if len(types) == 1 else "mixed"


def _flops(layer: Mapping[str, Any], kind: str) -> float:
    if kind not in _WEIGHTED_KINDS:
        return math.nan
    inputs, outputs = _tensors(layer, "Inputs"), _tensors(layer, "Outputs")
    in_dims = _dims(inputs[0]) if inputs else None
    out_dims = _dims(outputs[0]) if outputs else None
    out_maps = layer.get("OutMaps")
    if not in_dims or not out_dims or len(in_dims) < 2 or not isinstance(out_maps, (int, float)):
        return math.nan
    groups = layer.get("Groups") or 1
    kernel = math.prod(layer.get("Kernel") or [1])
    batch, channels = in_dims[0], in_dims[1]
    if kind == "FullyConnected":
        macs = batch * out_maps * math.prod(in_dims[1:])
    elif kind == "Deconvolution":
        macs = batch * channels * math.prod(in_dims[2:]) * (out_maps / groups) * kernel
    else:
        macs = batch * out_maps * math.prod(out_dims[2:]) * (channels / groups) * kernel
    return float(2 * macs)


def _bytes(layer: Mapping[str, Any]) -> float:
    total = 0.0
    tensors = _tensors(layer, "Inputs") + _tensors(layer, "Outputs")
    if not tensors:
        return math.nan
    for tensor in tensors:
        dims, dtype = _dims(tensor), dtype_of(tensor.get("Format/Datatype"))
        if dims is None or dtype is None:
            return math.nan
        total += math.prod(dims) * _DTYPE_BYTES[dtype]
    for key in ("Weights", "Bias"):
        block = layer.get(key)
        if isinstance(block, Mapping) and block.get("Count"):
            dtype = dtype_of(str(block.get("Type", "")))
            if dtype is None:
                return math.nan
            total += float(block["Count"]) * _DTYPE_BYTES[dtype]
    return total


def _tensors(layer: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = layer.get(key)
    return [t for t in value if isinstance(t, Mapping)] if isinstance(value, list) else []


def _dims(tensor: Mapping[str, Any]) -> list[int] | None:
    dims = tensor.get("Dimensions")
    if not isinstance(dims, list) or not all(isinstance(d, int) and d >= 0 for d in dims):
        return None
    return dims


def _io_names(document: Mapping[str, Any]) -> list[str]:
    """Engine I/O tensor names, inputs first: TensorRT 10's ``Bindings`` or TensorRT 11's ``I/O Tensors``."""
    if "I/O Tensors" in document:
        records = [t for t in document["I/O Tensors"] if isinstance(t, Mapping) and isinstance(t.get("Name"), str)]
        records.sort(key=lambda t: t.get("IOMode") != "Input")
        return [t["Name"] for t in records]
    return [b for b in document.get("Bindings", []) if isinstance(b, str)]


def _batch(layers: list[Any], bindings: list[str]) -> int | None:
    """Leading dimension of the first input binding, as the engine actually ran it."""
    for layer in layers:
        if not isinstance(layer, Mapping):
            continue
        for tensor in _tensors(layer, "Inputs"):
            if bindings and tensor.get("Name") == bindings[0]:
                dims = _dims(tensor)
                return dims[0] if dims else None
    return None
