"""Unstructured magnitude pruning: zero the smallest weights of every Conv/Gemm/MatMul.

It is the simplest baseline for how much accuracy a given sparsity costs, but dense kernels still
multiply the zeros, so on every backend here it buys no speed; the summary says so plainly to keep
anyone from mistaking a smaller gzip for a faster model.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

import numpy as np
import onnx

from workbench.errors import ModelError
from workbench.progress import Progress
from workbench.pruning.graph_index import GraphIndex, WeightLayer, weight_layers
from workbench.pruning.in_place import zero_in_place
from workbench.pruning.report import PruneReport, SkippedLayer

SPEED_NOTE = "no speed-up on dense kernels (zeros are still multiplied); smaller only when compressed"


def _zero_smallest(value: np.ndarray, count: int) -> np.ndarray:
    """Zero exactly ``count`` entries of smallest magnitude (ties broken by position)."""
    flat = value.reshape(-1).copy()
    if count > 0:
        order = np.argpartition(np.abs(flat), count - 1)[:count]
        flat[order] = 0
    return flat.reshape(value.shape)


def magnitude_prune(
    model: onnx.ModelProto,
    ratio: float,
    *,
    scope: Literal["layer", "global"] = "layer",
    layer_ratios: Mapping[str, float] | None = None,
    exclude: Collection[str] = (),
    progress: Progress | None = None,
) -> PruneReport:
    """Zero weights in ``model`` in place and report per-layer sparsity.

    ``scope="layer"`` gives every layer the same sparsity (``layer_ratios`` overrides it by layer
    name); ``scope="global"`` ranks all weights together, so layers with small weights lose more,
    which usually costs less accuracy at the same overall sparsity.
    """
    progress = progress or Progress()
    index = GraphIndex(model)
    layers, rejected = weight_layers(index)
    report = PruneReport("magnitude", ratio)
    report.skipped = [SkippedLayer(index.name(n), n.op_type, why) for n, why in rejected]
    layer_ratios = dict(layer_ratios or {})
    unknown = set(layer_ratios) - {layer.name for layer in layers}
    if unknown:
        raise ModelError(
            f"layer_ratios names layers the model has no prunable weight layer for: {sorted(unknown)}.",
            "Use names from the report of a previous run (prunable Conv/Gemm/MatMul nodes).",
        )
    if scope == "global" and layer_ratios:
        raise ModelError("layer_ratios cannot be combined with scope='global'.",
                         "Use scope='layer' to set ratios per layer.")

    chosen: list[WeightLayer] = []
    seen: set[str] = set()
    for layer in layers:
        if layer.name in exclude:
            report.skipped.append(SkippedLayer(layer.name, layer.op_type, "excluded by the caller"))
        elif layer.weight in seen:
            report.skipped.append(SkippedLayer(layer.name, layer.op_type,
                                               f"shares weight {layer.weight!r} with a layer already pruned"))
        else:
            seen.add(layer.weight)
            chosen.append(layer)
    if not chosen:
        raise ModelError(
            "The model has no Conv, Gemm or MatMul layer with constant weights to prune.",
            "Magnitude pruning needs weights stored in the model; pick another model or method.",
        )

    before = {layer.weight: index.const(layer.weight) for layer in chosen}
    counts: dict[str, int] = {}
    if scope == "global":
        magnitudes = np.concatenate([np.abs(v.astype(np.float64).reshape(-1)) for v in before.values()])
        total = round(ratio * magnitudes.size)
        threshold_mask = np.zeros(magnitudes.size, dtype=bool)
        if total > 0:
            threshold_mask[np.argpartition(magnitudes, total - 1)[:total]] = True
        offset = 0
        for name, value in before.items():
            counts[name] = int(threshold_mask[offset:offset + value.size].sum())
            offset += value.size
    else:
        for layer in chosen:
            share = layer_ratios.get(layer.name, ratio)
            counts[layer.weight] = round(share * before[layer.weight].size)

    def zeroed(layer: WeightLayer, old: np.ndarray) -> np.ndarray | None:
        count = counts[layer.weight]
        return _zero_smallest(old, count) if count > 0 else None

    zero_in_place(model, index, chosen, zeroed, report, progress)
    overall = 1 - report.params_after / report.params_before if report.params_before else 0.0
    report.summary = (
        f"magnitude ({scope}): {overall:.0%} of weights in {len(report.layers)} layers are zero; "
        f"{SPEED_NOTE}."
    )
    progress.report("prune", 1.0, report.summary)
    return report
