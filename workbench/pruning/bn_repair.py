"""Re-estimate BatchNorm statistics after pruning, on calibration data and without training.

Removing input channels of a layer shifts the mean and spread of its output, so the BatchNorm after
it normalizes with stale running statistics; recomputing them on a few hundred samples recovers
much of the accuracy that pruning lost. BatchNorms are refreshed in dependency order, each seeing
activations already normalized by the refreshed ones upstream, as in a training-mode forward pass.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping

import numpy as np
import onnx

from workbench.progress import Progress
from workbench.pruning.calib_probe import DEFAULT_BATCH, Probe, check_calib, downstream, fix_levels
from workbench.pruning.graph_index import GraphIndex
from workbench.pruning.targets import read_targets


def batchnorm_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """BatchNorms in inference form (constant mean and variance) that can be refreshed."""
    index = GraphIndex(model)
    return [n for n in model.graph.node if n.op_type == "BatchNormalization" and len(n.input) >= 5
            and index.initializers.get(n.input[3]) is not None and index.initializers.get(n.input[4]) is not None]


def reestimate_batchnorm(
    model: onnx.ModelProto,
    calib_inputs: Mapping[str, np.ndarray],
    *,
    drifted: Collection[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` whose BatchNorm means and variances match the calibration data.

    In a model the pruner wrote, only BatchNorms downstream of a pruned layer are refreshed; the
    others keep their trained statistics bit for bit. ``drifted`` narrows that to the outputs of
    the pruned layers no other repair has already brought back.
    """
    progress = progress or Progress()
    check_calib(model, calib_inputs)
    repaired = copy.deepcopy(model)
    index = GraphIndex(repaired)
    nodes = batchnorm_nodes(repaired)
    targets = read_targets(repaired)
    if drifted is None and targets is not None:
        drifted = [t.output for t in targets]
    if drifted is not None:  # only BatchNorms behind a pruned layer saw their input change
        affected = downstream(repaired, drifted)
        nodes = [n for n in nodes if id(n) in affected]
    if not nodes:
        return repaired
    # A running-stat tensor shared by several BatchNorms would get one value for all; give each its own.
    for node in nodes:
        for slot in (3, 4):
            if index.uses(node.input[slot]) > 1:
                node.input[slot] = index.add_initializer(node.input[slot], index.const(node.input[slot]).copy())
    levels = fix_levels(repaired, nodes)
    params = [n.input[s] for n in nodes for s in (3, 4)]
    probe = Probe(repaired, [n.input[0] for n in nodes], params)
    values = {name: index.const(name) for name in params}
    deepest = max(levels.values())
    for level in range(1, deepest + 1):
        progress.report("repair", (level - 1) / deepest, f"BatchNorm statistics, pass {level}/{deepest}")
        batch = [n for n in nodes if levels[id(n)] == level]
        stats = probe.moments(calib_inputs, {n.input[0]: 1 for n in batch}, values, batch_size)
        for node in batch:
            mean, var = stats[node.input[0]]
            values[node.input[3]] = mean.astype(values[node.input[3]].dtype)
            values[node.input[4]] = var.astype(values[node.input[4]].dtype)
    for name, value in values.items():
        index.set_const(name, value)
    progress.report("repair", 1.0, f"refreshed {len(nodes)} BatchNorm layers")
    return repaired
