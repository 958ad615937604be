"""OpenVINO's executed graph and performance counters read into the shared layer table.

A compiled model's *runtime model* lists every layer OpenVINO really executes, with the kernel it
picked (``primitiveType``, e.g. ``brgconv_avx512_amx_I8``), the precision it ran in and the
``originalLayersNames`` it was fused from; OpenVINO keeps the ONNX node names there, so each
row maps back to the file. Performance counters give each executed layer's time per inference,
under the same names. The per-layer time is the median over the profiled runs (warm-up dropped).

The same runtime model answers whether an INT8 file really ran in INT8: a quantized Conv or
MatMul that OpenVINO could not fuse with its Q/DQ nodes runs dequantized in FP32 instead, silently.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import onnx
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.model.flops import node_flops
from workbench.profiles.layer_table import make_layer_table

_PRECISIONS = {"f32": "FP32", "bf16": "BF16", "f16": "FP16", "i8": "INT8", "u8": "INT8", "i32": "INT32",
               "f64": "FP64", "boolean": "BOOL", "i64": "INT64"}
#: Layer types that only move or describe data: never a quantized compute layer.
_PLUMBING = frozenset({"Input", "Output", "Const", "Parameter", "Result"})
#: ONNX ops whose quantization is the point of an INT8 file (weights through DequantizeLinear).
QUANTIZED_COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})


@dataclass(frozen=True)
class RuntimeLayer:
    """One layer of OpenVINO's executed graph."""

    name: str
    layer_type: str
    kernel: str
    runtime_precision: str
    original_names: tuple[str, ...]

    @property
    def precision(self) -> str:
        """The precision the kernel computed in: an ``_I8`` kernel is INT8 whatever its output type."""
        if self.kernel.upper().endswith(("_I8", "_U8")):
            return "INT8"
        return _PRECISIONS.get(self.runtime_precision.lower(), self.runtime_precision.upper() or "unknown")


def _rt_value(info: Mapping[str, Any], key: str) -> str:
    value = info.get(key) if hasattr(info, "get") else None
    if value is None:
        try:
            value = info[key]
        except (KeyError, TypeError, RuntimeError):
            return ""
    return value.astype(str) if hasattr(value, "astype") else str(value)


def runtime_layers(compiled_model: Any) -> list[RuntimeLayer]:
    """The executed layers of a compiled model, in execution order, constants and I/O left out."""
    layers = []
    for op in compiled_model.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer_type = _rt_value(info, "layerType")
        if layer_type in _PLUMBING:
            continue
        names = tuple(n for n in _rt_value(info, "originalLayersNames").split(",") if n)
        layers.append(RuntimeLayer(op.get_friendly_name(), layer_type, _rt_value(info, "primitiveType"),
                                   _rt_value(info, "runtimePrecision"), names))
    return layers


def quantized_compute_nodes(model: onnx.ModelProto) -> list[str]:
    """Conv/MatMul/Gemm nodes of a Q/DQ file whose weights come through a DequantizeLinear."""
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return [node.name for node in model.graph.node
            if node.op_type in QUANTIZED_COMPUTE_OPS and len(node.input) > 1 and node.input[1] in dequantized]


def _onnx_nodes_of(layer: RuntimeLayer, known: set[str]) -> list[str]:
    """The file's nodes a runtime layer came from.

    OpenVINO names what its transformations make after the node they came from (a Gemm becomes
    ``<gemm>/WithoutBiases``), so a node also owns the original names under its own path.
    """
    nodes: list[str] = []
    for name in layer.original_names:
        parts = name.split("/")
        candidates = [name] + ["/".join(parts[:i]) for i in range(len(parts) - 1, 1, -1)]
        found = next((c for c in candidates if c in known), None)
        if found is not None and found not in nodes:
            nodes.append(found)
    return nodes


#: OpenVINO layer types that absorb a Conv/MatMul whose own name they may drop (BatchNorm folded in).
_COMPUTE_LAYERS = frozenset({"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul"})


def onnx_nodes_by_layer(layers: Sequence[RuntimeLayer], model: onnx.ModelProto) -> dict[str, list[str]]:
    """Each runtime layer's ONNX nodes: by name, and for a Conv/MatMul whose name OpenVINO dropped while
    folding the BatchNorm after it into its weights, by the consumer that kept its name."""
    known = {node.name for node in model.graph.node}
    claimed = {layer.name: _onnx_nodes_of(layer, known) for layer in layers}
    owner = {node: layer for layer in layers for node in claimed[layer.name]}
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node.name)
    for node in model.graph.node:
        if node.name in owner or node.op_type not in QUANTIZED_COMPUTE_OPS:
            continue
        after = {owner[c] for out in node.output for c in consumers.get(out, []) if c in owner}
        if len(after) == 1 and (layer := after.pop()).layer_type in _COMPUTE_LAYERS:
            claimed[layer.name].insert(0, node.name)
            owner[node.name] = layer
    return claimed


def _split_by_precision(
    quantized: Sequence[str], claimed: Mapping[str, list[str]], layers: Sequence[RuntimeLayer],
) -> tuple[list[str], list[str], list[str]]:
    owner = {node: layer for layer in layers for node in claimed[layer.name]}
    in_int8, not_int8, kernels = [], [], []
    for node in quantized:
        layer = owner.get(node)
        if layer is not None and layer.precision == "INT8":
            in_int8.append(node)
            if layer.kernel not in kernels:
                kernels.append(layer.kernel)
        else:
            not_int8.append(node)
    return in_int8, not_int8, kernels


def int8_execution(layers: Sequence[RuntimeLayer], model: onnx.ModelProto) -> tuple[list[str], list[str], list[str]]:
    """(quantized nodes that ran in INT8, those that did not, the INT8 kernels used)."""
    return _split_by_precision(quantized_compute_nodes(model), onnx_nodes_by_layer(layers, model), layers)


#: OpenVINO op types of the compute layers an INT8 IR quantizes, and the ops between a weight and its layer.
_IR_COMPUTE = frozenset({"MatMul", "Convolution", "GroupConvolution", "ConvolutionBackpropData"})
_IR_WEIGHT_PATH = frozenset({"Convert", "Multiply", "Subtract", "Reshape", "Transpose", "Unsqueeze"})


def _source(output: Any) -> Any:
    node = output.get_node()
    while node.get_type_name() in _IR_WEIGHT_PATH:
        node = node.input_value(0).get_node()
    return node


def _weight_is_int8(output: Any) -> bool:
    """A constant weight stored in INT8, or one quantized on the fly; an activation's FakeQuantize is not."""
    node = _source(output)
    if node.get_type_name() == "FakeQuantize":
        return _source(node.input_value(0)).get_type_name() == "Constant"
    return node.get_type_name() == "Constant" and node.get_output_element_type(0).get_type_name() in ("i8", "u8")


def quantized_ir_nodes(ov_model: Any) -> list[str]:
    """Compute layers of an OpenVINO INT8 model (NNCF's IR) whose weights are INT8, by layer name. An IR without
    FakeQuantize has no INT8 activations to check: its weights are compressed only (weight-only), and OpenVINO
    unpacks them inside its matrix kernels, so none is listed."""
    ops = ov_model.get_ordered_ops()
    if not any(op.get_type_name() == "FakeQuantize" for op in ops):
        return []
    return [op.get_friendly_name() for op in ops
            if op.get_type_name() in _IR_COMPUTE and op.get_input_size() > 1 and _weight_is_int8(op.input_value(1))]


def ir_int8_execution(layers: Sequence[RuntimeLayer], ov_model: Any) -> tuple[list[str], list[str], list[str]]:
    """``int8_execution`` for an OpenVINO IR, whose layer names are the executed layers' original names."""
    known = {op.get_friendly_name() for op in ov_model.get_ops()}
    claimed = {layer.name: _onnx_nodes_of(layer, known) for layer in layers}
    return _split_by_precision(quantized_ir_nodes(ov_model), claimed, layers)


def int8_note(layers: Sequence[RuntimeLayer], model: onnx.ModelProto | None = None, *,
              ov_model: Any = None) -> str | None:
    """The run note that says, from the executed graph, how much of an INT8 file (a Q/DQ ONNX ``model``
    or an OpenVINO IR ``ov_model``) ran in INT8."""
    in_int8, not_int8, kernels = (ir_int8_execution(layers, ov_model) if ov_model is not None
                                  else int8_execution(layers, model))
    total = len(in_int8) + len(not_int8)
    if total == 0:
        return None
    note = (f"INT8 check on OpenVINO's executed graph: {len(in_int8)} of {total} quantized Conv/MatMul/Gemm "
            f"layers ran in INT8 ({', '.join(kernels) or 'no INT8 kernel'})")
    if not_int8:
        shown = ", ".join(not_int8[:5]) + (f" and {len(not_int8) - 5} more" if len(not_int8) > 5 else "")
        note += f"; ran dequantized in FP32: {shown}"
    return note


def counter_sample(profiling_info: Iterable[Any]) -> dict[str, float]:
    """One inference's performance counters: executed layer name -> milliseconds."""
    return {p.node_name: p.real_time.total_seconds() * 1000.0 for p in profiling_info if p.status.name == "EXECUTED"}


def layer_table_from_counters(
    samples: Sequence[Mapping[str, float]],
    layers: Sequence[RuntimeLayer],
    model: onnx.ModelProto,
    *,
    batch: int = 1,
    source_model: onnx.ModelProto | None = None,
) -> pd.DataFrame:
    """One row per executed layer: median time over ``samples``, kernel, precision, ONNX nodes.

    Layers OpenVINO adds itself (layout reorders, converts) keep an empty ``onnx_nodes`` list and stay
    rows of their own, since they cost real time. FLOPs are counted per sample, so scaled by ``batch``.
    """
    if not samples:
        raise WorkbenchError("OpenVINO reported no performance counters, so there is no per-layer table.",
                             "Profile with a profile folder (PERF_COUNT on) and run the model at least once.")
    claimed = onnx_nodes_by_layer(layers, model)
    flops = node_flops(source_model) if source_model is not None else {}
    flops |= node_flops(model)
    op_of = {node.name: node.op_type for node in model.graph.node}
    rows = []
    for layer in layers:
        times = [sample[layer.name] for sample in samples if layer.name in sample]
        if not times:
            continue
        nodes = claimed[layer.name]
        counted = [flops[n] for n in nodes if n in flops]
        main_ops = [op_of[n] for n in nodes if op_of[n] not in ("QuantizeLinear", "DequantizeLinear")]
        rows.append({
            "name": layer.name,
            "onnx_nodes": nodes,
            "op_type": main_ops[0] if main_ops else layer.layer_type,
            "kernel": layer.kernel,
            "precision": layer.precision,
            "time_ms": statistics.median(times),
            "flops": sum(counted) * batch if counted else float("nan"),
        })
    return make_layer_table(rows)


def quantized_by_native(source: onnx.ModelProto, ir_path: str) -> list[str]:
    """Nodes of the ONNX ``source`` whose layers the OpenVINO-native INT8 IR at ``ir_path`` quantized, in graph
    order: what its node fall-back may keep in FP32 (OpenVINO names a split node's layers ``<node>/...``)."""
    import openvino

    layers = quantized_ir_nodes(openvino.Core().read_model(ir_path))
    return [node.name for node in source.graph.node
            if node.name and any(layer == node.name or layer.startswith(node.name + "/") for layer in layers)]
