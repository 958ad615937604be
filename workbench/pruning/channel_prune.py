"""Structured channel pruning: remove whole output channels and everything that reads them.

Unlike zeroing weights, removing channels makes every dense kernel smaller, so it is the method
that speeds the model up on a CPU. The dependency tracking lives in ``channel_groups``; this module
decides which channels survive (by importance summed over each coupled group) and rewrites the
constants, keeping untouched tensors byte-for-byte as they were.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection
from dataclasses import replace
from typing import Literal

import numpy as np
import onnx

from workbench.errors import ModelError
from workbench.progress import Progress
from workbench.pruning.channel_groups import ChannelPlan, analyse
from workbench.pruning.graph_index import GraphIndex, WeightLayer, attribute, sparsity, weight_layers
from workbench.pruning.report import LayerChange, PruneReport, SkippedLayer
from workbench.pruning.targets import output_target, write_targets

Criterion = Literal["auto", "l1", "l2", "bn"]

def kept_count(channels: int, ratio: float, round_to: int | None) -> int:
    """Channels to keep: ``(1 - ratio) * channels`` rounded half up, optionally to a multiple.

    Rounding to a multiple of 8/16/32 matches the vector widths CPU and tensor-core kernels are
    tuned for; a count below ``round_to`` becomes ``round_to`` (never more than the layer has).
    """
    keep = max(1, math.floor((1.0 - ratio) * channels + 0.5))
    if round_to:
        keep = max(round_to, math.floor(keep / round_to + 0.5) * round_to)
    return min(channels, keep)


def _scores(index: GraphIndex, plan: ChannelPlan, layer: WeightLayer, criterion: Criterion) -> np.ndarray:
    """One producer's per-channel importance, scaled to mean 1 so no layer dominates its group."""
    scale_name = plan.bn_after.get(layer.name)
    if criterion in ("bn", "auto") and scale_name is not None:
        scores = np.abs(index.const(scale_name).astype(np.float64))
    else:
        weight = np.moveaxis(index.const(layer.weight).astype(np.float64), layer.out_axis, 0)
        rows = weight.reshape(weight.shape[0], -1)
        scores = np.abs(rows).sum(1) if criterion == "l1" else np.sqrt((rows**2).sum(1))
    mean = scores.mean()
    return scores / mean if mean > 0 else scores


def _index_map(plan: ChannelPlan, segments: tuple[tuple[int, int], ...], kept: dict[int, np.ndarray]) -> np.ndarray:
    """Positions along a tensor's channel axis that survive, for a layout made of ``segments``."""
    parts: list[np.ndarray] = []
    offset = 0
    for gid, factor in segments:
        root = plan.find(gid)
        size = plan.groups[root].size
        keep = kept.get(root, np.arange(size))
        parts.append((offset + keep[:, None] * factor + np.arange(factor)[None, :]).reshape(-1))
        offset += size * factor
    return np.concatenate(parts) if parts else np.arange(0)


def _layer_shapes(index: GraphIndex, layer: WeightLayer) -> tuple[int, int, int]:
    """(input channels, output channels, weight + bias elements) as the layer stands now."""
    weight = index.const(layer.node.input[1])
    params = int(weight.size)
    if len(layer.node.input) > 2 and layer.node.input[2]:
        bias = index.const(layer.node.input[2])
        params += int(bias.size) if bias is not None else 0
    if layer.op_type == "Conv":
        in_channels = int(weight.shape[1]) * int(attribute(layer.node, "group", 1))
    else:
        in_channels = int(weight.shape[layer.in_axis])
    return in_channels, int(weight.shape[layer.out_axis]), params


def _float_params(model: onnx.ModelProto) -> int:
    return sum(math.prod(t.dims) for t in model.graph.initializer
               if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                  onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16))


def channel_prune(
    model: onnx.ModelProto,
    ratio: float,
    *,
    round_to: int | None = None,
    criterion: Criterion = "auto",
    exclude: Collection[str] = (),
    progress: Progress | None = None,
) -> PruneReport:
    """Remove ``ratio`` of the channels of every prunable group of ``model``, in place.

    ``criterion="auto"`` ranks a layer's channels by the |scale| of the BatchNorm right after it
    when there is one (it already says how much each channel contributes), else by the filter's
    L2 norm. ``exclude`` names layers whose groups must stay whole.
    """
    progress = progress or Progress()
    progress.report("analyse", 0.0, "tracing channel dependencies")
    params_before = _float_params(model)
    plan = analyse(model)
    index = plan.index
    for name in exclude:
        if name in plan.sources:
            plan.root(plan.sources[name]).blocks.append("excluded by the caller")

    layers_before = {id(layer.node): (layer, _layer_shapes(index, layer), sparsity(index.const(layer.weight)))
                     for layer in weight_layers(index)[0]}
    roots = sorted({plan.find(gid) for gid in plan.sources.values()})
    prunable = [r for r in roots if not plan.groups[r].blocks]
    if not plan.sources and not plan.rejected:
        raise ModelError(
            "The model has no Conv, Gemm or MatMul layer with constant weights to prune.",
            "Channel pruning needs weight layers stored in the model; pick another model.",
        )
    if not prunable:
        reasons = sorted({b for r in roots for b in plan.groups[r].blocks}
                         | {why for _, why in plan.rejected})
        raise ModelError(
            "No layer of this model can have channels removed safely: " + "; ".join(reasons[:5]) + ".",
            "Try magnitude or 2:4 pruning, which keep the graph's shape.",
        )

    kept: dict[int, np.ndarray] = {}
    for position, root in enumerate(prunable):
        progress.report("analyse", position / len(prunable), "ranking channels")
        group = plan.groups[root]
        scores = np.zeros(group.size)
        for layer in group.producers:
            scores += _scores(index, plan, layer, criterion)
        keep = kept_count(group.size, ratio, round_to)
        if keep < group.size:
            order = np.argsort(-scores, kind="stable")[:keep]
            kept[root] = np.sort(order)

    _apply(plan, kept, progress)

    report, pruned_nodes = _report(model, plan, ratio, layers_before, params_before)
    _record_targets(model, plan, kept, pruned_nodes)
    progress.report("prune", 1.0, report.summary)
    return report


def _report(model: onnx.ModelProto, plan: ChannelPlan, ratio: float, layers_before: dict, params_before: int,
            ) -> tuple[PruneReport, set[int]]:
    """What pruning did, layer by layer, and why each layer left whole was; with the ids of the nodes slimmed."""
    index = plan.index
    report = PruneReport("channel", ratio)
    pruned_nodes: set[int] = set()
    for node_id, (layer, (cin, cout, params), zeros_before) in layers_before.items():
        after = _layer_shapes(index, layer)
        if after != (cin, cout, params):
            pruned_nodes.add(node_id)
            weight = index.const(layer.node.input[1])
            report.layers.append(LayerChange(
                layer.name, layer.op_type, layer.node.input[1], cin, after[0], cout, after[1],
                zeros_before, sparsity(weight), params, after[2],
            ))
    def blocked_reason(name: str) -> str:
        group = plan.root(plan.sources[name])
        if not group.blocks:
            return f"ratio {ratio:g} removes no channels from its {group.size}"
        reasons = [b for b in dict.fromkeys(group.blocks) if "no prunable layer makes" not in b]
        reasons = reasons or list(dict.fromkeys(group.blocks))
        return "; ".join(reasons[:3]) + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else "")

    report.layers = [
        replace(change, note=f"output channels kept whole: {blocked_reason(change.name)}")
        if change.name in plan.sources and change.out_channels_after == change.out_channels_before
        else change
        for change in report.layers
    ]
    skipped: dict[str, SkippedLayer] = {}
    for node, why in plan.rejected:
        skipped.setdefault(index.name(node), SkippedLayer(index.name(node), node.op_type, why))
    for name, gid in plan.sources.items():
        layer = next(p for p in plan.root(gid).producers if p.name == name)
        if id(layer.node) not in pruned_nodes and name not in skipped:
            skipped[name] = SkippedLayer(name, layer.op_type, blocked_reason(name))
    for node_id, (layer, _, _) in layers_before.items():
        if node_id not in pruned_nodes and layer.name not in skipped and layer.name not in plan.sources:
            why = ("depthwise/grouped Conv: follows its input's channels, which were not pruned"
                   if layer.op_type == "Conv" else "its output channels are not tracked")
            skipped[layer.name] = SkippedLayer(layer.name, layer.op_type, why)
    report.skipped = list(skipped.values())
    report.params_before = params_before
    report.params_after = _float_params(model)
    removed = 1 - report.params_after / params_before if params_before else 0.0
    report.summary = (
        f"channel: {len(report.layers)} layers slimmed, {len(report.skipped)} left whole; "
        f"{removed:.0%} fewer parameters; dense kernels get smaller, so it runs faster on every backend."
    )
    return report, pruned_nodes


def _apply(plan: ChannelPlan, kept: dict[int, np.ndarray], progress: Progress) -> None:
    """Slice every affected constant; shared constants read differently by two nodes get cloned."""
    index = plan.index
    specs: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
    nodes: dict[int, onnx.NodeProto] = {}
    for action in plan.slices:
        positions = _index_map(plan, action.segments, kept)
        specs[(id(action.node), action.slot)].append((action.axis, positions))
        nodes[id(action.node)] = action.node
    by_const: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for key in specs:
        node = nodes[key[0]]
        by_const[node.input[key[1]]].append(key)

    for position, (const, keys) in enumerate(by_const.items()):
        progress.report("prune", position / max(1, len(by_const)), f"slicing {const}")
        original = index.const(const)
        results = {}
        for key in keys:
            value = original
            for axis, positions in specs[key]:
                if len(positions) != value.shape[axis]:
                    value = np.take(value, positions, axis=axis)
            results[key] = value
        changed = {k: v for k, v in results.items() if v is not original}
        if not changed:
            continue
        first = next(iter(results.values()))
        same = all(v.shape == first.shape and np.array_equal(v, first) for v in results.values())
        if same and len(keys) == index.uses(const):
            index.set_const(const, first)
            continue
        for key, value in changed.items():
            node = nodes[key[0]]
            node.input[key[1]] = index.add_initializer(f"{const}_pruned", np.ascontiguousarray(value))

    for node, segments in plan.depthwise:
        channels = len(_index_map(plan, segments, kept))
        for attr in node.attribute:
            if attr.name == "group":
                attr.i = channels
    for action in plan.shapes:
        target = index.const(action.node.input[action.slot]).copy()
        new = len(_index_map(plan, action.segments, kept))
        if int(target[action.position]) == new:
            continue
        target[action.position] = new
        if index.uses(action.node.input[action.slot]) > 1:
            action.node.input[action.slot] = index.add_initializer(
                f"{action.node.input[action.slot]}_pruned", target)
        else:
            index.set_const(action.node.input[action.slot], target)
    index.remove_unused_initializers()

    stale = {name for name, layout in plan.layouts.items()
             if any(plan.find(g) in kept for g, _ in layout.segments)}
    infos = [v for v in index.graph.value_info if v.name not in stale]
    del index.graph.value_info[:]
    index.graph.value_info.extend(infos)


def _record_targets(model: onnx.ModelProto, plan: ChannelPlan, kept: dict[int, np.ndarray],
                    pruned: set[int]) -> None:
    """Note which layers lost input channels, and which of their inputs and outputs survive, for ``repair``."""
    def positions(tensor: str) -> list[int] | None:
        layout = plan.layouts.get(tensor)
        if layout is None or not any(plan.find(g) in kept for g, _ in layout.segments):
            return None
        return _index_map(plan, layout.segments, kept).tolist()

    targets = [replace(output_target(layer), kept=positions(layer.node.output[0]), in_kept=positions(tensor))
               for layer, tensor in plan.consumers if id(layer.node) in pruned]
    write_targets(model, targets)
