"""Whether ONNX Runtime's CUDA graphs can time a model, and the sentence that says why not.

A CUDA graph records one run's kernel launches and replays them with a single launch, so the
per-kernel launch cost of ONNX Runtime's executor disappears; on small batches that cost is most of
the time (ResNet-50 FP16 batch 1 on an H100, benchmarks/RESULTS.md). A replay repeats the recorded
work on the recorded addresses, so it serves only runs whose shapes cannot change between two calls
with the same input shapes: no control flow (the branch taken is recorded), no operator whose output
size depends on the data (its size is read back to the host mid-run, which a capture cannot do), and
tensors as graph inputs and outputs (they are bound at fixed GPU addresses). Everything else (nodes
ONNX Runtime places off the GPU, a capture that fails) only ONNX Runtime can tell; the backend
asks it and falls back to plain runs with its answer as the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import onnx

#: The CUDA provider option that turns graph capture on.
OPTION = "enable_cuda_graph"
CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})
#: Operators whose output size is known only once their input values are (read back mid-run).
DATA_DEPENDENT_SIZE = frozenset({"NonZero", "NonMaxSuppression", "Unique", "Compress"})
_ONNX_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class GraphChoice:
    """Whether timed runs replay a captured graph, with the note a run records either way."""

    enabled: bool
    note: str


ON = GraphChoice(True, "CUDA graphs on: timed runs replay one captured graph per input shape")


def off(reason: str) -> GraphChoice:
    return GraphChoice(False, f"CUDA graphs off: {reason}")


def _nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node of the main graph and of local functions (subgraphs live only under control flow)."""
    yield from model.graph.node
    for function in model.functions:
        yield from function.node


def graph_blocker(model: onnx.ModelProto) -> str | None:
    """Why a captured graph cannot replay this model's runs, or None when the model allows it."""
    for node in _nodes(model):
        if node.domain not in _ONNX_DOMAINS:
            continue
        name = f" '{node.name}'" if node.name else ""
        if node.op_type in CONTROL_FLOW:
            return (f"the model's {node.op_type} node{name} is control flow, and a captured graph replays "
                    "one path only")
        if node.op_type in DATA_DEPENDENT_SIZE:
            return (f"the model's {node.op_type} node{name} makes an output whose size depends on the data, "
                    "so its shapes can change between runs")
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if not value.type.HasField("tensor_type"):
                return f"the model's {kind} '{value.name}' is not a tensor, and only tensors can be bound to the GPU"
    return None


def choose(options: dict[str, str], model: onnx.ModelProto, profiling: bool) -> GraphChoice:
    """On by default; off where the user said so, the profiler needs every kernel, or the model forbids it."""
    asked = options.get(OPTION)
    if asked is not None and asked.strip().lower() in ("0", "false"):
        return off(f"the provider option {OPTION}={asked} turned them off")
    if profiling:
        return off("the per-layer profiler times each kernel as ONNX Runtime launches it, and a replay has none")
    blocker = graph_blocker(model)
    return off(blocker) if blocker else ON
