"""ONNX Runtime profiler traces read into the shared layer table.

ORT writes a Chrome-trace JSON: ``Session`` events (loading, ``model_run`` per inference) and one
``Node`` event per kernel call, named ``<node name>_kernel_time``. Only kernel events are layer
time; each is assigned to the ``model_run`` it falls in, the first ``warmup`` runs are dropped,
and a layer's time is the median over the remaining runs of its summed kernel time in that run.

The names are those of ORT's *optimised* graph, not of the file: fusions rename nodes
(``fused Gemm``), the NCHWc layout pass names a fused Conv+BN+Relu after its output tensor plus
``_nchwc``, Q/DQ groups become ``QLinearConv`` named ``<Conv>_token_N``, and ORT inserts its own
nodes (``Transpose``, ``ReorderOutput``, casts). ``map_kernel_names`` reads each name back to the
file's nodes where it can, then hands every node that ran inside a fused kernel (weight DQs, BN,
activations, Q/DQ around a QLinear op) to the kernel that absorbed it, using the graph; inserted
nodes keep an empty ``onnx_nodes`` list and stay rows of their own, as layout conversions cost
real time.
"""

from __future__ import annotations

import bisect
import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import onnx
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.model.flops import node_flops
from workbench.profiles.layer_table import make_layer_table

KERNEL_SUFFIX = "_kernel_time"

#: Ops that only exist in quantized graphs: whatever their input types, they are INT8 work.
INT8_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearConcat", "QLinearLeakyRelu", "QLinearSigmoid",
    "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere", "QGemm", "QAttention", "QEmbedLayerNormalization",
    "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
    "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear",
})

_DTYPE_PRECISION = {
    "float": "FP32", "float32": "FP32", "double": "FP64",
    "float16": "FP16", "MLFloat16": "FP16", "bfloat16": "BF16", "BFloat16": "BF16",
    "int8": "INT8", "uint8": "INT8",
    "float8e4m3fn": "FP8", "float8e5m2": "FP8",
}
_ONNX_ELEM_PRECISION = {
    onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.DOUBLE: "FP64", onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.BFLOAT16: "BF16", onnx.TensorProto.INT8: "INT8", onnx.TensorProto.UINT8: "INT8",
}

#: Ops that ORT fuses into the kernel before them (epilogues): they join their producer's row.
_EPILOGUE_OPS = frozenset({
    "BatchNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Gelu", "Erf", "Add", "Mul", "Sub", "Div", "QuantizeLinear",
})

_PREFIXES = ("fused ", "InsertedPrecisionFreeCast_")
_SUFFIXES = (re.compile(r"_token_\d+$"), re.compile(r"_nchwc$"), re.compile(r"_output_\d+$"))


@dataclass
class KernelEvent:
    """One kernel call: which run it fell in, and what the trace says about it."""

    run: int
    name: str
    op_type: str
    dtypes: tuple[str, ...]
    dur_ms: float
    bytes: float


@dataclass
class OrtTrace:
    """The kernel calls of a trace, numbered by run, beside each run's own ``model_run`` time."""

    kernels: list[KernelEvent]
    run_ms: list[float]

    def after_warmup(self, warmup: int) -> OrtTrace:
        """The trace without its first ``warmup`` runs (caches, arenas and thread pools warming up)."""
        if warmup >= self.runs:
            raise WorkbenchError(
                f"The profile holds {self.runs} runs and {warmup} are warm-up, so none are left to time.",
                "Profile more runs than warm-up runs.",
            )
        kept = [
            KernelEvent(k.run - warmup, k.name, k.op_type, k.dtypes, k.dur_ms, k.bytes)
            for k in self.kernels
            if k.run >= warmup
        ]
        return OrtTrace(kept, self.run_ms[warmup:])

    @property
    def runs(self) -> int:
        return max(len(self.run_ms), 1 + max((k.run for k in self.kernels), default=-1))

    def kernel_sums_ms(self) -> list[float]:
        """Summed kernel time of each run: the layer sum's spread."""
        sums = [0.0] * self.runs
        for kernel in self.kernels:
            sums[kernel.run] += kernel.dur_ms
        return sums


def read_ort_trace(path: str | Path) -> OrtTrace:
    """Parse an ORT profile; raises WorkbenchError when the file is not one."""
    path = Path(path)
    try:
        events = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"Cannot read the ONNX Runtime profile '{path.name}': {exc}.",
                             "Pass the JSON file ONNX Runtime wrote with profiling enabled.") from exc
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise WorkbenchError(f"'{path.name}' is not an ONNX Runtime profile (expected a list of trace events).",
                             "Pass the JSON file ONNX Runtime wrote with profiling enabled.")
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    starts = [e["ts"] for e in runs]
    kernels = []
    occurrences: dict[str, int] = defaultdict(int)
    for event in sorted(events, key=lambda e: e.get("ts", 0)):
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX):
            continue
        node = name[: -len(KERNEL_SUFFIX)]
        if starts:
            run = bisect.bisect_right(starts, event["ts"]) - 1
            if run < 0:
                continue
        else:  # a trace without session events: the k-th call of a node belongs to run k
            run = occurrences[node]
            occurrences[node] += 1
        args = event.get("args", {})
        kernels.append(KernelEvent(
            run=run,
            name=node,
            op_type=args.get("op_name", ""),
            dtypes=tuple(_dtypes(args.get("input_type_shape", [])) + _dtypes(args.get("output_type_shape", []))),
            dur_ms=float(event.get("dur", 0)) / 1000.0,
            bytes=sum(float(args.get(key, 0) or 0) for key in ("activation_size", "parameter_size", "output_size")),
        ))
    if not kernels:
        raise WorkbenchError(f"'{path.name}' holds no kernel events, so there is no per-layer time.",
                             "Profile a session that ran the model at least once after profiling was enabled.")
    return OrtTrace(kernels, [e["dur"] / 1000.0 for e in runs])


def _dtypes(type_shapes: list) -> list[str]:
    return [dtype for entry in type_shapes if isinstance(entry, dict) for dtype in entry]


def precision_of(op_type: str, dtypes: tuple[str, ...]) -> str:
    """INT8 for quantized ops, else the first floating (or 8-bit) type the kernel touched."""
    if op_type in INT8_OPS or op_type.startswith("QLinear"):
        return "INT8"
    for dtype in dtypes:
        precision = _DTYPE_PRECISION.get(dtype)
        if precision is not None:
            return precision
    return "unknown"


def _candidates(kernel_name: str) -> list[str]:
    """The names a kernel may stand for, most literal first: ORT's decorations peeled one by one."""
    found = [kernel_name]
    name = kernel_name
    while True:
        peeled = next((name[len(p):] for p in _PREFIXES if name.startswith(p)), None)
        if peeled is None:
            peeled = next((s.sub("", name) for s in _SUFFIXES if s.search(name)), None)
        if peeled is None or not peeled:
            return found
        name = peeled
        found.append(name)


def map_kernel_names(kernel_names: list[str], model: onnx.ModelProto) -> dict[str, list[str]]:
    """Each kernel's ONNX nodes (in graph order); ``[]`` for nodes ORT inserted itself."""
    nodes = [node.name or f"{node.op_type}_{index}" for index, node in enumerate(model.graph.node)]
    by_name = {name: index for index, name in enumerate(nodes)}
    producer = {out: index for index, node in enumerate(model.graph.node) for out in node.output if out}
    group: dict[int, str] = {}
    for kernel in kernel_names:
        for candidate in _candidates(kernel):
            index = by_name.get(candidate, producer.get(candidate))
            if index is not None and index not in group:
                group[index] = kernel
                break
    _absorb_fused_nodes(model, group)
    result: dict[str, list[str]] = {kernel: [] for kernel in kernel_names}
    for index in sorted(group):
        result[group[index]].append(nodes[index])
    return result


def _absorb_fused_nodes(model: onnx.ModelProto, group: dict[int, str]) -> None:
    """Give nodes with no kernel of their own to the kernel that ran them.

    Epilogues with one dynamic input (BN, activations, bias adds, Q) join their producer when it
    feeds nothing else; any other node joins its only consumer (weight DQs, a Conv whose BN+Relu
    named the fused kernel). Repeated until nothing moves, so chains resolve in either direction.
    """
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    consumers: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name:
                consumers[name].append(index)
    producer = {out: index for index, node in enumerate(graph.node) for out in node.output if out}
    graph_outputs = {o.name for o in graph.output}
    moved = True
    while moved:
        moved = False
        for index, node in enumerate(graph.node):
            if index in group:
                continue
            dynamic = [name for name in node.input if name and name not in constants]
            if node.op_type in _EPILOGUE_OPS and len(dynamic) == 1 and dynamic[0] in producer:
                source = producer[dynamic[0]]
                if source in group and consumers[dynamic[0]] == [index] and dynamic[0] not in graph_outputs:
                    group[index] = group[source]
                    moved = True
                    continue
        for index in reversed(range(len(graph.node))):
            if index in group:
                continue
            users = {user for out in graph.node[index].output for user in consumers.get(out, [])}
            if len(users) == 1:
                (user,) = users
                if user in group:
                    group[index] = group[user]
                    moved = True


def _graph_precision(nodes: list[str], model: onnx.ModelProto) -> str:
    """Fallback when the trace has no types: the element type of the nodes' first input."""
    types = {info.name: info.type.tensor_type.elem_type
             for info in [*model.graph.input, *model.graph.value_info, *model.graph.output]}
    types |= {init.name: init.data_type for init in model.graph.initializer}
    by_name = {node.name: node for node in model.graph.node}
    for name in nodes:
        node = by_name.get(name)
        if node is None:
            continue
        if node.op_type in INT8_OPS:
            return "INT8"
        for tensor in [*node.input, *node.output]:
            precision = _ONNX_ELEM_PRECISION.get(types.get(tensor, 0))
            if precision:
                return precision
    return "unknown"


def layer_table_from_trace(
    trace: OrtTrace | str | Path,
    model: onnx.ModelProto,
    *,
    warmup: int = 0,
    batch: int = 1,
    source_model: onnx.ModelProto | None = None,
) -> pd.DataFrame:
    """The layer table of one profiled model: one row per ORT kernel, in execution order.

    ``model`` is the file the session loaded (names and types come from it); FLOPs are counted
    on it and, for nodes it lacks (a variant's renamed nodes), on ``source_model``, then scaled
    by ``batch`` because the counter's figures are per sample.
    """
    trace = trace if isinstance(trace, OrtTrace) else read_ort_trace(trace)
    trace = trace.after_warmup(warmup) if warmup else trace
    per_run: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    facts: dict[str, KernelEvent] = {}
    for kernel in trace.kernels:
        per_run[kernel.name][kernel.run] += kernel.dur_ms
        facts.setdefault(kernel.name, kernel)
    names = list(facts)
    mapping = map_kernel_names(names, model)
    flops = node_flops(source_model) if source_model is not None else {}
    flops |= node_flops(model)
    rows = []
    for name in names:
        fact = facts[name]
        nodes = mapping[name]
        precision = precision_of(fact.op_type, fact.dtypes)
        if precision == "unknown" and nodes:
            precision = _graph_precision(nodes, model)
        counted = [flops[n] for n in nodes if n in flops]
        rows.append({
            "name": name,
            "onnx_nodes": nodes,
            "op_type": fact.op_type or "unknown",
            "precision": precision,
            "time_ms": statistics.median(per_run[name].values()),
            "flops": sum(counted) * batch if counted else float("nan"),
            "bytes": fact.bytes or float("nan"),
        })
    return make_layer_table(rows)
