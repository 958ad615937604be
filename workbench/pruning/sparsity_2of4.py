"""2:4 structured sparsity: at most two non-zeros in every group of four input channels.

This is the one weight pattern TensorRT's sparse tensor-core kernels (Ampere and newer) can use,
and only when the engine is built with sparse weights enabled and FP16/INT8 precision. TensorRT's
documented rule: for a weight of shape [K, C, R, S] (Conv; FC weights read as [K, C]) with
C % 4 == 0, every run of four consecutive input channels at each output channel and kernel
position holds at least two zeros. On CPUs and dense GPU kernels the zeros buy nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from workbench.errors import ModelError
from workbench.progress import Progress
from workbench.pruning.graph_index import GraphIndex, WeightLayer, weight_layers
from workbench.pruning.in_place import zero_in_place
from workbench.pruning.report import PruneReport, SkippedLayer

SPEED_NOTE = (
    "speed-up only on TensorRT sparse tensor cores (Ampere+), with sparse weights and FP16/INT8 "
    "enabled; none on CPU or dense kernels"
)


@dataclass(frozen=True)
class Violation:
    """An eligible weight that breaks the 2:4 pattern; ``position`` is the first bad group's start."""

    layer: str
    weight: str
    bad_groups: int
    total_groups: int
    position: tuple[int, ...]


def _groups_last(value: np.ndarray, in_axis: int) -> np.ndarray:
    """View the weight as rows of 4 consecutive input channels: shape [-1, 4]."""
    moved = np.moveaxis(value, in_axis, -1)
    return moved.reshape(-1, moved.shape[-1] // 4, 4)


def eligibility(index: GraphIndex, layer: WeightLayer) -> str | None:
    """Why TensorRT could not run this layer with sparse weights, or None when it can."""
    value = index.const(layer.weight)
    channels = value.shape[layer.in_axis]
    if layer.op_type == "Conv" and layer.group > 1 and channels == 1:
        return "depthwise convolution (one input channel per group), no group of 4 to sparsify"
    if channels % 4:
        per = " per group" if layer.group > 1 else ""
        return f"input channels{per} ({channels}) are not a multiple of 4"
    readers = {index.name(n) for n, slot in index.consumers[layer.weight] if slot == 1}
    if len(readers) > 1:
        return f"weight {layer.weight!r} is shared by layers {sorted(readers)}"
    return None


def eligible_layers(model: onnx.ModelProto) -> tuple[list[WeightLayer], list[SkippedLayer]]:
    """Layers that can carry the 2:4 pattern, and every other weight layer with its reason."""
    index = GraphIndex(model)
    layers, rejected = weight_layers(index)
    skipped = [SkippedLayer(index.name(n), n.op_type, why) for n, why in rejected]
    chosen: list[WeightLayer] = []
    for layer in layers:
        reason = eligibility(index, layer)
        if reason is None:
            chosen.append(layer)
        else:
            skipped.append(SkippedLayer(layer.name, layer.op_type, reason))
    return chosen, skipped


def apply_2of4(value: np.ndarray, in_axis: int) -> np.ndarray:
    """Keep the two largest-magnitude weights of each group of four along ``in_axis``."""
    moved = np.moveaxis(value, in_axis, -1)
    groups = moved.reshape(-1, 4).copy()
    smallest = np.argsort(np.abs(groups), axis=1, kind="stable")[:, :2]
    np.put_along_axis(groups, smallest, 0, axis=1)
    return np.moveaxis(groups.reshape(moved.shape), -1, in_axis)


def sparsify_2of4(model: onnx.ModelProto, *, apply: bool = True, progress: Progress | None = None) -> PruneReport:
    """Apply the 2:4 pattern to every eligible layer of ``model`` in place.

    ``apply=False`` only reports eligibility (ratio 0 in the UI: "show me, change nothing").
    """
    progress = progress or Progress()
    index = GraphIndex(model)
    chosen, skipped = eligible_layers(model)
    report = PruneReport("2:4", 0.5 if apply else 0.0, skipped=skipped)
    if not chosen:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in skipped) or "no Conv/Gemm/MatMul layers"
        raise ModelError(
            f"No layer of this model can take 2:4 sparsity ({reasons}).",
            "2:4 needs Conv/Gemm/MatMul weights with input channels a multiple of 4; "
            "use channel or magnitude pruning instead.",
        )
    zero_in_place(model, index, chosen, lambda layer, old: apply_2of4(old, layer.in_axis) if apply else None,
                  report, progress)
    done = "sparsified to 50%" if apply else "eligible (ratio 0: left dense)"
    report.summary = f"2:4: {len(report.layers)} layers {done} ({len(skipped)} not eligible); {SPEED_NOTE}."
    progress.report("prune", 1.0, report.summary)
    return report


def check_2of4(model: onnx.ModelProto) -> list[Violation]:
    """Every eligible weight that has more than two non-zeros in some group of four.

    An empty list means TensorRT will list all eligible layers as "eligible for sparse math".
    """
    index = GraphIndex(model)
    chosen, _ = eligible_layers(model)
    violations: list[Violation] = []
    for layer in chosen:
        value = index.const(layer.weight)
        counts = np.count_nonzero(_groups_last(value, layer.in_axis), axis=-1)
        bad = counts > 2
        if bad.any():
            flat = int(np.flatnonzero(bad.reshape(-1))[0])
            moved_shape = np.moveaxis(value, layer.in_axis, -1).shape
            where = list(np.unravel_index(flat * 4, moved_shape))
            where.insert(layer.in_axis, where.pop())
            violations.append(Violation(layer.name, layer.weight, int(bad.sum()), int(bad.size),
                                        tuple(int(i) for i in where)))
    return violations
