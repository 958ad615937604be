"""The pruning engine's front door: one call per method, checked input, a validated model out.

The pipeline, CLI and widgets all call ``prune`` and ``repair``; keeping validation here means a
bad ratio or an unprunable model gets the same sentence everywhere, and a model that fails ONNX's
checker or ONNX Runtime never leaves this module (it is a bug, reported as a BuildError).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Collection, Mapping
from typing import Literal

import numpy as np
import onnx

from workbench.errors import BuildError, DataError, ModelError, WorkbenchError
from workbench.messages import library_message
from workbench.progress import Progress
from workbench.pruning.bias_correction import correct_bias
from workbench.pruning.bn_repair import batchnorm_nodes, reestimate_batchnorm
from workbench.pruning.calib_probe import DEFAULT_BATCH, downstream
from workbench.pruning.channel_prune import Criterion, channel_prune
from workbench.pruning.magnitude import magnitude_prune
from workbench.pruning.reconstruct import reconstruct as reconstruct_layers
from workbench.pruning.reconstruct import reconstruct_targets
from workbench.pruning.report import PruneResult
from workbench.pruning.sparsity_2of4 import sparsify_2of4
from workbench.pruning.targets import read_targets
from workbench.vocabulary import PRUNE_METHODS as METHODS
from workbench.vocabulary import check_ratio

Method = Literal["magnitude", "2:4", "channel"]
def prune(
    model: onnx.ModelProto,
    method: Method,
    ratio: float,
    *,
    round_to: int | None = None,
    scope: Literal["layer", "global"] = "layer",
    layer_ratios: Mapping[str, float] | None = None,
    criterion: Criterion = "auto",
    exclude: Collection[str] = (),
    validate: bool = True,
    progress: Progress | None = None,
) -> PruneResult:
    """Prune a copy of ``model``; the caller's proto is never modified.

    - ``"magnitude"``: zero the smallest ``ratio`` of each layer's weights (``scope="global"``
      ranks all layers together; ``layer_ratios`` overrides per layer). Smaller when compressed,
      never faster.
    - ``"2:4"``: the TensorRT sparse-tensor-core pattern; sparsity is 50% of eligible layers by
      construction, so ``ratio`` only switches it on (> 0) or off (0).
    - ``"channel"``: remove ``ratio`` of the channels of every safely prunable group; the only
      method that speeds up dense CPU/GPU kernels. ``round_to`` rounds kept counts to a multiple.

    ``validate`` runs ONNX's full checker and one ONNX Runtime inference on the result.
    """
    progress = progress or Progress()
    if not isinstance(model, onnx.ModelProto):
        raise ModelError(f"prune() needs an onnx.ModelProto, got {type(model).__name__}.",
                         "Load the file first (workbench.model.loader) and pass the proto.")
    if method not in METHODS:
        raise WorkbenchError(f"Unknown pruning method {method!r}.", f"Choose one of {', '.join(METHODS)}.")
    ratio = check_ratio(ratio)
    if round_to is not None:
        if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
            raise WorkbenchError(f"round_to must be a positive whole number, got {round_to!r}.",
                                 "Use 8, 16 or 32, or leave it unset.")
        if method != "channel":
            raise WorkbenchError(f"round_to only applies to channel pruning, not {method!r}.",
                                 "Leave round_to unset for this method.")
    if layer_ratios:
        for name, value in layer_ratios.items():
            try:
                check_ratio(value)
            except WorkbenchError as error:
                raise WorkbenchError(f"Layer {name!r}: {error.problem}", error.fix) from None
    if layer_ratios and method != "magnitude":
        raise WorkbenchError("layer_ratios only applies to magnitude pruning.", "Leave it unset for this method.")

    pruned = copy.deepcopy(model)
    work = progress.slice(0.0, 0.85)
    if method == "magnitude":
        report = magnitude_prune(pruned, ratio, scope=scope, layer_ratios=layer_ratios,
                                 exclude=exclude, progress=work)
    elif method == "2:4":
        report = sparsify_2of4(pruned, apply=ratio > 0, progress=work)
        if ratio not in (0.0, 0.5):
            report.summary += f" (requested ratio {ratio:g} ignored: the pattern fixes sparsity at 50%)"
    else:
        report = channel_prune(pruned, ratio, round_to=round_to, criterion=criterion,
                               exclude=exclude, progress=work)
    if validate:
        progress.report("validate", 0.9, "checking the pruned model")
        validate_model(pruned)
    progress.report("validate", 1.0, report.summary)
    return PruneResult(pruned, method, ratio, report)


def _sample_feeds(model: onnx.ModelProto) -> dict[str, np.ndarray] | None:
    """Zeros of batch 1 for every input; None when a non-batch dimension is unknown."""
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for info in model.graph.input:
        if info.name in initializers:
            continue
        tensor = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if any(d is None for d in dims[1:]):
            return None
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        feeds[info.name] = np.zeros([1 if dims[0] is None else dims[0], *dims[1:]], dtype)
    return feeds


def validate_model(model: onnx.ModelProto) -> None:
    """Raise BuildError unless the model passes the full checker and runs in ONNX Runtime."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise BuildError(f"The pruned model is not valid ONNX ({library_message(error)}).",
                         "This is a pruner bug; please report it with the model. Nothing was written.") from error
    try:
        import onnxruntime as ort
    except ImportError:  # the runtime is an extra; the checker above is then the whole check
        return
    feeds = _sample_feeds(model)
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        if feeds is not None:
            session.run(None, feeds)
    except Exception as error:  # ORT raises its own exception types for graph errors
        raise BuildError(f"ONNX Runtime cannot run the pruned model ({library_message(error)}).",
                         "This is a pruner bug; please report it with the model. Nothing was written.") from error


def repair(
    model: onnx.ModelProto,
    calib_inputs: Mapping[str, np.ndarray],
    reference_model: onnx.ModelProto | None,
    *,
    batch_size: int = DEFAULT_BATCH,
    reconstruct: bool = True,
    progress: Progress | None = None,
) -> onnx.ModelProto:
    """A repaired copy of a pruned ``model``, using calibration data and no training.

    With ``reconstruct``, layers that lost input channels first get their remaining weights and bias
    refitted by least squares to the outputs of ``reference_model`` (the unpruned model). For the
    pruned layers it could not refit, BatchNorms behind them get statistics re-estimated on
    ``calib_inputs``, and those with no BatchNorm right after them get bias correction against
    ``reference_model``. The reference is required only when reconstruction or bias correction has
    something to do.
    """
    progress = progress or Progress()
    if not isinstance(model, onnx.ModelProto):
        raise ModelError(f"repair() needs an onnx.ModelProto, got {type(model).__name__}.",
                         "Pass the proto returned by prune().")
    calib = {name: np.asarray(value) for name, value in calib_inputs.items()}
    repaired = model
    refitted: set[str] = set()
    if reconstruct and reconstruct_targets(model):
        repaired, refitted = reconstruct_layers(model, calib, _reference(reference_model),
                                                batch_size=batch_size, progress=progress.slice(0, 0.5))
    # A refitted layer already gives its unpruned output; what follows it keeps its trained statistics.
    targets = read_targets(model)
    drifted = None if targets is None else [t.output for t in targets if t.output not in refitted]
    bn_nodes = batchnorm_nodes(model)
    if drifted is not None:
        affected = downstream(model, drifted)
        bn_nodes = [n for n in bn_nodes if id(n) in affected]
    if bn_nodes:
        repaired = reestimate_batchnorm(repaired, calib, drifted=drifted, batch_size=batch_size,
                                        progress=progress.slice(0.5, 0.8))
    readers: dict[str, set[str]] = defaultdict(set)
    for node in model.graph.node:
        for name in node.input:
            readers[name].add(node.op_type)
    if drifted is None:
        rest = None if not bn_nodes else set()
    else:
        rest = {name for name in drifted if readers[name] != {"BatchNormalization"}}
    if rest is None or rest:
        repaired = correct_bias(repaired, calib, _reference(reference_model), only=rest, batch_size=batch_size,
                                progress=progress.slice(0.8, 1.0))
    return repaired if repaired is not model else copy.deepcopy(model)


def _reference(model: onnx.ModelProto | None) -> onnx.ModelProto:
    """The unpruned model, which reconstruction and bias correction compare against."""
    if model is None:
        raise DataError("Reconstruction and bias correction need the unpruned model to compare against.",
                        "Pass the original model as reference_model.")
    return model
