"""Bias correction: give each pruned layer's output the per-channel mean it had before pruning.

Removed input channels (or zeroed weights) take their average contribution with them, which after
a ReLU is far from zero; that shift is systematic, so adding it back as a bias (measured on
calibration data against the unpruned model) recovers accuracy with no training. It is the repair
for models without BatchNorm (transformers, BN-folded CNNs). Layers are corrected in dependency
order so each correction sees the already-corrected layers upstream.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import onnx

from workbench.errors import DataError
from workbench.progress import Progress
from workbench.pruning.calib_probe import DEFAULT_BATCH, Probe, check_calib, fix_levels
from workbench.pruning.graph_index import GraphIndex, attribute, weight_layers
from workbench.pruning.targets import Target, output_target, read_targets


def bias_slot(index: GraphIndex, node: onnx.NodeProto, channels: int) -> tuple[str, float] | None:
    """The constant that adds a per-output-channel bias to ``node`` (created when missing), and
    the factor the bias is scaled by (Gemm's beta); None when no such constant can be made.
    """
    if node.op_type in ("Conv", "Gemm"):
        beta = float(attribute(node, "beta", 1.0)) if node.op_type == "Gemm" else 1.0
        if beta == 0.0:
            return None
        dtype = index.const(node.input[1]).dtype
        if len(node.input) < 3 or not node.input[2]:
            name = index.add_initializer(f"{node.output[0]}_bias", np.zeros(channels, dtype))
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = name
            return name, beta
        value = index.const(node.input[2])
        if value is None or value.size not in (1, channels):
            return None
        if value.size == 1 or index.uses(node.input[2]) > 1:
            node.input[2] = index.add_initializer(f"{node.input[2]}_corrected",
                                                  np.broadcast_to(value.reshape(-1), (channels,)).copy())
        return node.input[2], beta
    # MatMul: adjust the Add right after it when that Add adds a constant vector, else insert one.
    out = node.output[0]
    readers = index.consumers.get(out, [])
    if len(readers) == 1 and readers[0][0].op_type == "Add" and out not in index.graph_outputs:
        add, slot = readers[0]
        other = add.input[1 - slot]
        value = index.const(other)
        if value is not None and value.size == channels and value.shape[-1] == channels:
            if index.uses(other) > 1:
                add.input[1 - slot] = index.add_initializer(f"{other}_corrected", value.copy())
            return add.input[1 - slot], 1.0
    if out in index.graph_outputs:
        return None
    dtype = index.const(node.input[1]).dtype
    raw = f"{out}_before_bias"
    bias = index.add_initializer(f"{out}_bias", np.zeros(channels, dtype))
    node.output[0] = raw
    position = list(index.graph.node).index(node) + 1
    index.graph.node.insert(position, onnx.helper.make_node("Add", [raw, bias], [out], name=f"{out}_bias_add"))
    return bias, 1.0


def _default_targets(model: onnx.ModelProto, reference: onnx.ModelProto) -> list[Target]:
    """Without the pruner's note: every weight layer whose output the reference also has, same size."""
    ref_index = GraphIndex(reference)
    ref_layers = {layer.node.output[0]: layer for layer in weight_layers(ref_index)[0]}
    index = GraphIndex(model)
    targets = []
    for layer in weight_layers(index)[0]:
        twin = ref_layers.get(layer.node.output[0])
        if twin is not None and (index.const(layer.weight).shape[layer.out_axis]
                                 == ref_index.const(twin.weight).shape[twin.out_axis]):
            targets.append(output_target(layer))
    return targets


def correct_bias(
    model: onnx.ModelProto,
    calib_inputs: Mapping[str, np.ndarray],
    reference_model: onnx.ModelProto,
    *,
    only: set[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> onnx.ModelProto:
    """A copy of ``model`` whose pruned layers' output means match ``reference_model``'s.

    ``only`` limits the correction to the layers with those output tensors (``repair`` leaves the
    layers a refreshed BatchNorm already re-centres to that BatchNorm).
    """
    progress = progress or Progress()
    check_calib(model, calib_inputs)
    check_calib(reference_model, calib_inputs)
    repaired = copy.deepcopy(model)
    targets = read_targets(repaired)
    if targets is None:
        targets = _default_targets(repaired, reference_model)
    if only is not None:
        targets = [t for t in targets if t.output in only]
    index = GraphIndex(repaired)
    by_output = {n.output[0]: n for n in repaired.graph.node if n.output}
    ref_tensors = {o for n in reference_model.graph.node for o in n.output}
    usable: list[tuple[Target, onnx.NodeProto]] = []
    for target in targets:
        node = by_output.get(target.output)
        if node is None or target.output not in ref_tensors:
            raise DataError(f"The reference model has no tensor {target.output!r} to compare layer "
                            f"{target.node!r} against.", "Pass the unpruned model this one was made from.")
        usable.append((target, node))
    if not usable:
        return repaired

    progress.report("repair", 0.0, "reference statistics")
    axes = {t.output: t.axis for t, _ in usable}
    reference = Probe(reference_model, list(axes)).moments(calib_inputs, axes, batch_size=batch_size)

    layers = {id(layer.node): layer for layer in weight_layers(index)[0]}
    slots: dict[str, tuple[str, float]] = {}
    for target, node in usable:
        layer = layers.get(id(node))
        if layer is None:
            continue
        slot = bias_slot(index, node, int(index.const(layer.weight).shape[layer.out_axis]))
        if slot is not None:
            slots[target.output] = slot
    usable = [(t, n) for t, n in usable if t.output in slots]
    if not usable:
        return repaired
    # The probe reads each layer's own product (before an inserted bias Add), so rename lookups.
    measured = {t.output: n.output[0] for t, n in usable}
    levels = fix_levels(repaired, [n for _, n in usable])
    params = list(dict.fromkeys(name for name, _ in slots.values()))
    probe = Probe(repaired, list(measured.values()), params)
    values = {name: index.const(name).copy() for name in params}
    deepest = max(levels.values())
    for level in range(1, deepest + 1):
        progress.report("repair", level / (deepest + 1), f"bias correction, pass {level}/{deepest}")
        batch = [(t, n) for t, n in usable if levels[id(n)] == level]
        stats = probe.moments(calib_inputs, {measured[t.output]: t.axis for t, _ in batch}, values, batch_size)
        for target, _ in batch:
            mean = stats[measured[target.output]][0]
            want = reference[target.output][0]
            if target.kept is not None:
                want = want[np.asarray(target.kept)]
            name, beta = slots[target.output]
            values[name] = (values[name] + ((want - mean) / beta).reshape(values[name].shape)).astype(
                values[name].dtype)
    for name, value in values.items():
        index.set_const(name, value)
    progress.report("repair", 1.0, f"corrected the bias of {len(usable)} layers")
    return repaired
