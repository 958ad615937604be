"""Least-squares reconstruction: refit the layers that lost input channels to the unpruned outputs.

Removing input channels takes their contribution out of every output of the layer that read them.
BatchNorm re-estimation and bias correction restore each output channel's mean and spread, but not
*which* sample the removed channels spoke for; the surviving channels are correlated with them, so
refitting the layer's remaining weights can say much of it again (He et al. 2017, "Channel Pruning
for Accelerating Very Deep Neural Networks"; ThiNet). For each such layer, in dependency order, a
ridge regression maps its inputs in the pruned, already-reconstructed model to its outputs in the
unpruned model (its own kept output channels only), on calibration data: closed form, no training.
Rows are Conv im2col patches at a random sample of output positions (or Gemm/MatMul input vectors),
at most about ``ROW_BUDGET`` per layer, and only the normal equations are kept, so memory stays small.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from workbench.errors import DataError
from workbench.progress import Progress
from workbench.pruning.bias_correction import bias_slot
from workbench.pruning.calib_probe import DEFAULT_BATCH, Probe, check_calib, fix_levels
from workbench.pruning.graph_index import GraphIndex, WeightLayer, attribute, weight_layers
from workbench.pruning.targets import Target, read_targets

#: Rows (patches or vectors) sampled per layer over the whole calibration set.
ROW_BUDGET = 20_000
#: Ridge strength relative to the mean diagonal of A^T A; it pulls towards the pruned weights.
RIDGE = 1e-3
#: Layers with more input features than this (A^T A over 0.5 GB) are left to the other repairs.
MAX_FEATURES = 8192


@dataclass
class _Fit:
    """One layer being refitted and its normal equations, accumulated batch by batch."""

    target: Target
    layer: WeightLayer
    bias: str
    beta: float
    kernel: tuple[int, ...]  # Conv kernel shape; () for Gemm/MatMul
    gram: np.ndarray
    cross: np.ndarray
    rng: np.random.Generator


def reconstruct_targets(model: onnx.ModelProto) -> list[Target]:
    """The pruner's targets that lost input channels: the layers reconstruction refits."""
    return [t for t in read_targets(model) or [] if t.in_kept is not None]


def _padding(node: onnx.NodeProto, spatial: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...],
             strides: list[int], dilations: list[int]) -> list[tuple[int, int]] | None:
    """(before, after) padding per spatial dim, or None for an auto_pad this module does not follow."""
    auto = attribute(node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    rank = len(spatial)
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in attribute(node, "pads", [0] * 2 * rank)]
        return [(pads[d], pads[d + rank]) for d in range(rank)]
    if auto == "VALID":
        return [(0, 0)] * rank
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        return None
    result = []
    for d in range(rank):
        total = max(0, (out[d] - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - spatial[d])
        small, large = total // 2, total - total // 2
        result.append((small, large) if auto == "SAME_UPPER" else (large, small))
    return result


def _conv_rows(node: onnx.NodeProto, x: np.ndarray, out: tuple[int, ...], kernel: tuple[int, ...],
               images: np.ndarray, positions: np.ndarray) -> np.ndarray | None:
    """im2col rows, ordered like the weight's (channel, tap), at flat output ``positions`` of ``images``."""
    rank = len(out)
    if x.ndim != rank + 2:
        return None
    strides = [int(s) for s in attribute(node, "strides", [1] * rank)]
    dilations = [int(d) for d in attribute(node, "dilations", [1] * rank)]
    pads = _padding(node, x.shape[2:], out, kernel, strides, dilations)
    if pads is None:
        return None
    padded = np.moveaxis(np.pad(x, [(0, 0), (0, 0), *pads]), 1, -1)  # channels last
    where = np.unravel_index(positions, out)
    taps = np.unravel_index(np.arange(math.prod(kernel)), kernel)
    index = tuple(where[d][:, None] * strides[d] + taps[d][None, :] * dilations[d] for d in range(rank))
    if any(int(i.max(initial=0)) >= padded.shape[1 + d] for d, i in enumerate(index)):
        return None
    patches = padded[(images[:, None], *index)]  # rows, taps, channels
    return patches.transpose(0, 2, 1).reshape(len(images), -1)


def _rows(fit: _Fit, x: np.ndarray, y: np.ndarray, per_sample: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Sampled (inputs, wanted outputs) rows of one batch, or None when the layer cannot be mapped."""
    y = np.moveaxis(y, fit.target.axis, -1)
    if fit.target.kept is not None:
        y = y[..., np.asarray(fit.target.kept)]
    samples, out = y.shape[0], tuple(y.shape[1:-1])
    y = y.reshape(samples, -1, y.shape[-1])
    count = min(per_sample, y.shape[1])
    picks = np.argsort(fit.rng.random((samples, y.shape[1])), axis=1)[:, :count]
    images, positions = np.repeat(np.arange(samples), count), picks.reshape(-1)
    if fit.kernel:
        inputs = _conv_rows(fit.layer.node, x, out, fit.kernel, images, positions)
    elif x.ndim >= 2 and x.shape[0] == samples and x[..., 0].size == y.shape[0] * y.shape[1]:
        inputs = x.reshape(samples, -1, x.shape[-1])[images, positions]
    else:
        inputs = None
    return None if inputs is None else (inputs, y[images, positions])


def _matrix(layer: WeightLayer, weight: np.ndarray) -> np.ndarray:
    """The layer's weight as a (features, outputs) matrix M, so that its output is x @ M (+ bias)."""
    weight = weight.astype(np.float64)
    if layer.op_type == "Conv":
        return weight.reshape(weight.shape[0], -1).T
    if layer.op_type == "Gemm":
        alpha = float(attribute(layer.node, "alpha", 1.0))
        return alpha * (weight.T if layer.out_axis == 0 else weight)
    return weight


def _write(fit: _Fit, matrix: np.ndarray, intercept: np.ndarray, values: dict[str, np.ndarray]) -> None:
    """Store a solution M, b into ``values`` (weight and bias slot) in the layer's own layout."""
    layer = fit.layer
    weight = values[layer.weight]
    if layer.op_type == "Conv":
        new = matrix.T.reshape(weight.shape)
    elif layer.op_type == "Gemm":
        scaled = matrix / float(attribute(layer.node, "alpha", 1.0))
        new = scaled.T if layer.out_axis == 0 else scaled
    else:
        new = matrix
    values[layer.weight] = new.astype(weight.dtype)
    bias = values[fit.bias]
    if layer.op_type == "MatMul":  # the slot is an Add after the product; the fit measured the product
        values[fit.bias] = (bias + intercept.reshape(bias.shape)).astype(bias.dtype)
    else:
        values[fit.bias] = (intercept / fit.beta).reshape(bias.shape).astype(bias.dtype)


def _solve(fit: _Fit, start: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Ridge solution pulled towards the current weights (the bias is not pulled), or None if degenerate."""
    features = start.shape[0]
    gram = fit.gram.copy()
    strength = RIDGE * np.trace(gram[:features, :features]) / features
    if not strength > 0:
        return None
    gram[np.arange(features), np.arange(features)] += strength
    right = fit.cross.copy()
    right[:features] += strength * start
    try:
        solution = np.linalg.solve(gram, right)
    except np.linalg.LinAlgError:
        return None
    return (solution[:features], solution[features]) if np.isfinite(solution).all() else None


def _prepare(index: GraphIndex, target: Target, layer: WeightLayer) -> _Fit | None:
    """The fit for one target, with its bias slot made and its weight unshared; None when unsafe."""
    node = layer.node
    weight = index.const(layer.weight)
    if layer.op_type == "Conv":
        if layer.group != 1 or weight.shape[1] != len(target.in_kept or ()):
            return None
        kernel = tuple(int(k) for k in weight.shape[2:])
        features = int(weight.shape[1]) * math.prod(kernel)
    else:
        if (int(attribute(node, "transA", 0)) or float(attribute(node, "alpha", 1.0)) == 0.0
                or weight.shape[layer.in_axis] != len(target.in_kept or ())):
            return None
        kernel, features = (), int(weight.shape[layer.in_axis])
    outputs = int(weight.shape[layer.out_axis])
    if features > MAX_FEATURES or (target.kept is not None and len(target.kept) != outputs):
        return None
    slot = bias_slot(index, node, outputs)
    if slot is None:
        return None
    if index.uses(layer.weight) > 1:
        node.input[1] = index.add_initializer(f"{layer.weight}_reconstructed", weight.copy())
        layer = WeightLayer(node, layer.name, layer.op_type, node.input[1], layer.in_axis, layer.out_axis,
                            layer.group)
    seed = int.from_bytes(target.output.encode()[-8:].rjust(8, b"\0"), "little")
    return _Fit(target, layer, slot[0], slot[1], kernel, np.zeros((features + 1, features + 1)),
                np.zeros((features + 1, outputs)), np.random.default_rng(seed))


def reconstruct(
    model: onnx.ModelProto,
    calib_inputs: Mapping[str, np.ndarray],
    reference_model: onnx.ModelProto,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> tuple[onnx.ModelProto, set[str]]:
    """A copy of ``model`` whose layers that lost input channels reproduce ``reference_model``'s outputs,
    and the output tensors of the layers it refitted.

    Only layers the pruner noted as having lost input channels are refitted (weight and bias); every
    other constant stays bit for bit. Layers that cannot be mapped safely (grouped Conv, an unknown
    auto_pad, no place for a bias) are left to the other repairs. The fitted bias already gives a
    refitted layer its unpruned output mean, so bias correction has nothing left to do there.
    """
    progress = progress or Progress()
    samples = check_calib(model, calib_inputs)
    check_calib(reference_model, calib_inputs)
    repaired = copy.deepcopy(model)
    index = GraphIndex(repaired)
    layers = {layer.node.output[0]: layer for layer in weight_layers(index)[0]}
    ref_tensors = {o for n in reference_model.graph.node for o in n.output}
    fits: list[_Fit] = []
    for target in reconstruct_targets(repaired):
        if target.output not in ref_tensors:
            raise DataError(f"The reference model has no tensor {target.output!r} to compare layer "
                            f"{target.node!r} against.", "Pass the unpruned model this one was made from.")
        layer = layers.get(target.output)
        fit = None if layer is None else _prepare(index, target, layer)
        if fit is not None:
            fits.append(fit)
    if not fits:
        return repaired, set()

    levels = fix_levels(repaired, [f.layer.node for f in fits])
    params = list(dict.fromkeys(name for f in fits for name in (f.layer.weight, f.bias)))
    probe = Probe(repaired, [f.layer.node.input[0] for f in fits], params)
    reference = Probe(reference_model, [f.target.output for f in fits])
    values = {name: index.const(name).copy() for name in params}
    per_sample = max(1, math.ceil(ROW_BUDGET / samples))
    deepest = max(levels.values())
    done: set[str] = set()
    for level in range(1, deepest + 1):
        progress.report("repair", (level - 1) / deepest, f"least-squares reconstruction, pass {level}/{deepest}")
        batch = [f for f in fits if levels[id(f.layer.node)] == level]
        inputs = list(dict.fromkeys(f.layer.node.input[0] for f in batch))
        outputs = list(dict.fromkeys(f.target.output for f in batch))
        mapped = {id(f) for f in batch}
        for xs, ys in zip(probe.batches(calib_inputs, inputs, values, batch_size),
                          reference.batches(calib_inputs, outputs, None, batch_size), strict=True):
            for fit in (f for f in batch if id(f) in mapped):
                x, y = xs[inputs.index(fit.layer.node.input[0])], ys[outputs.index(fit.target.output)]
                rows = _rows(fit, x, y, per_sample)
                if rows is None or rows[0].shape[1] + 1 != len(fit.gram) or rows[1].shape[1] != fit.cross.shape[1]:
                    mapped.discard(id(fit))  # shapes the fit cannot follow: leave the layer to the other repairs
                    continue
                design = np.hstack([rows[0].astype(np.float64), np.ones((len(rows[0]), 1))])
                fit.gram += design.T @ design
                fit.cross += design.T @ rows[1].astype(np.float64)
        for fit in batch:
            solution = _solve(fit, _matrix(fit.layer, values[fit.layer.weight])) if id(fit) in mapped else None
            if solution is not None:
                _write(fit, *solution, values)
                done.add(fit.target.output)
    for name, value in values.items():
        index.set_const(name, value)
    progress.report("repair", 1.0, f"reconstructed the weights of {len(done)} layers by least squares")
    return repaired, done
