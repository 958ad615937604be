"""Weight-only INT8/INT4 with NNCF's ``compress_weights`` on the ONNX model.

NNCF's ONNX writer stores 4-bit weights as a blocked ``DequantizeLinear`` (opset 21) feeding the
MatMul, or as ``MatMulNBits`` below opset 21, and 8-bit weights as a per-channel ``DequantizeLinear``;
OpenVINO turns them into its compressed-weight kernels and quantizes activations on the fly
(``DYNAMIC_QUANTIZATION_GROUP_SIZE``), ONNX Runtime fuses them into MatMulNBits. NNCF chooses by
itself which layers a ``ratio`` below 1 leaves at the backup precision (by the Hessian of the
calibration data when there is data, else by the weights' rounding error); with calibration data it
also offers AWQ with scale estimation. Three faults of its ONNX writer (NNCF 3.4), found on this
project's models, shape what is asked of it: asymmetric 4-bit zero points are misread by both engines
(ONNX Runtime refuses them, OpenVINO's outputs are garbage), so 4 bits are symmetric; an embedding
Gather told to take 4 bits becomes a MatMulNBits over integer ids (an invalid graph), so the
embedding tables stay FP32; and on all-mpnet-base-v2 its ``MatMulNBits`` gave sentence embeddings at
cosine 0.51 to FP32 in both engines, where the same compression written as opset-21 blocked
``DequantizeLinear`` gave 0.96 (as ONNX Runtime's writer does), so a model below opset 21 is upgraded
first. The weight-only builder uses NNCF for AWQ, or when asked.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import version_converter

from workbench.data.dataset import Dataset
from workbench.errors import BackendUnavailable, BuildError
from workbench.precision.nncf_int8 import INSTALL_HINT
from workbench.precision.weight_layers import LayerPlan, embedding_tables
from workbench.progress import Progress

#: The first opset whose DequantizeLinear takes blocks (``block_size``) and 4-bit types.
BLOCKED_DQ_OPSET = 21
#: AWQ and the Hessian ranking settle on a few dozen samples (NNCF's own default subset is 128).
SUBSET_SIZE = 64


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _compressed_counts(model: onnx.ModelProto) -> tuple[int, int]:
    """(4-bit, 8-bit) compressed weights NNCF wrote, as MatMulNBits or DequantizeLinear of (u)int4/(u)int8."""
    inits = {init.name: init.data_type for init in model.graph.initializer}
    four_types = {onnx.TensorProto.INT4, onnx.TensorProto.UINT4}
    four = eight = 0
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            bits = next((a.i for a in node.attribute if a.name == "bits"), 4)
            four, eight = four + (bits == 4), eight + (bits == 8)
        elif node.op_type == "DequantizeLinear" and node.input[0] in inits:
            is_four = inits[node.input[0]] in four_types
            four, eight = four + is_four, eight + (not is_four)
    return four, eight


def _feeds(calib: Dataset) -> Iterator[dict[str, np.ndarray]]:
    for i in range(len(calib)):
        yield {name: np.asarray(array, order="C") for name, array in calib.samples(i, i + 1).items()}


def compress_options(nncf, bits: int, *, ratio: float, block_size: int, symmetric: bool, algorithm: str,
                     backup: str, last_kept: bool, calib: Dataset | None) -> dict:
    """``compress_weights``' settings for the precision, for either of NNCF's writers: INT8 per channel, or INT4
    by group with its backup precision for the last layer and, where calibrated, AWQ or the ratio's ranking."""
    mode = nncf.CompressWeightsMode
    if bits == 8:
        return {"mode": mode.INT8_SYM if symmetric else mode.INT8_ASYM}
    from nncf.quantization.advanced_parameters import AdvancedCompressionParameters, GroupSizeFallbackMode

    # A layer narrower than the group gets the largest group that divides it, as the portable NNCF file does.
    adjust = AdvancedCompressionParameters(group_size_fallback_mode=GroupSizeFallbackMode.ADJUST)
    options = {"mode": mode.INT4_SYM if symmetric else mode.INT4_ASYM, "group_size": block_size, "ratio": ratio,
               "advanced_parameters": adjust,
               "all_layers": not last_kept,
               "backup_mode": nncf.BackupMode.NONE if backup == "fp32" else nncf.BackupMode.INT8_ASYM}
    if algorithm == "awq":
        options.update(awq=True, scale_estimation=True)
    if calib is not None and (algorithm == "awq" or ratio < 1):
        options.update(dataset=nncf.Dataset(list(_feeds(calib))), subset_size=min(SUBSET_SIZE, len(calib)))
    return options


def compress_weights_nncf(
    model: onnx.ModelProto,
    plan: LayerPlan,
    bits: int,
    *,
    ratio: float,
    block_size: int,
    symmetric: bool,
    algorithm: str,
    backup: str,
    calib: Dataset | None,
    progress: Progress,
) -> tuple[onnx.ModelProto, list[str]]:
    """NNCF's compressed model and notes; ``plan.kept`` stays FP32 (or at the backup precision in 4 bits)."""
    try:
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedCompressionParameters, GroupSizeFallbackMode
    except ImportError as exc:
        raise BackendUnavailable("NNCF, which writes OpenVINO's weight-only variants, is unavailable.",
                                 INSTALL_HINT) from exc
    if bits == 4 and not symmetric:
        raise BuildError("NNCF's ONNX writer stores asymmetric 4-bit zero points in a shape neither engine reads "
                         "correctly.", "Use symmetric 4-bit weights on openvino (the default there), or "
                         "asymmetric ones on onnxruntime-cpu.")
    logging.getLogger("nncf").setLevel(logging.ERROR)
    kept = [layer.name for layer in plan.kept]
    tables = embedding_tables(model)
    # NNCF keeps the last layer at the backup precision in 4 bits unless told all_layers; other kept layers are
    # left out of its scope, so they stay FP32 whatever the backup precision.
    ignored = [*kept, *tables] if bits == 8 else [name for name in kept if name != plan.last] + tables
    kwargs = compress_options(nncf, bits, ratio=ratio, block_size=block_size, symmetric=symmetric,
                              algorithm=algorithm, backup=backup, last_kept=plan.last is not None, calib=calib)
    kwargs.setdefault("advanced_parameters",
                      AdvancedCompressionParameters(group_size_fallback_mode=GroupSizeFallbackMode.ADJUST))
    notes = []
    if bits == 4 and model.opset_import and _default_opset(model) < BLOCKED_DQ_OPSET:
        progress.report("quantize", 0.05, f"upgrading the model to opset {BLOCKED_DQ_OPSET} for blocked weights")
        model = version_converter.convert_version(model, BLOCKED_DQ_OPSET)
        notes.append(f"model upgraded to opset {BLOCKED_DQ_OPSET}: NNCF writes its 4-bit blocks as DequantizeLinear "
                     "there (its MatMulNBits below it lost accuracy on a real encoder)")
    progress.report("quantize", 0.1, f"NNCF: weights to {bits} bits")
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bars and tables go to the terminal
        compressed = nncf.compress_weights(
            model, ignored_scope=nncf.IgnoredScope(names=ignored, types=["Conv", "ConvTranspose"], validate=False),
            **kwargs,
        )
    four, eight = _compressed_counts(compressed)
    notes.append(f"NNCF {kwargs['mode'].value}: {four} layers in 4 bits, {eight} in 8 bits"
                 + (", AWQ with scale estimation on calibration data" if kwargs.get("awq") else ""))
    if bits == 8 and block_size:
        notes.append("NNCF stores 8-bit weights with one scale per output channel (no blocks)")
    return compressed, notes
