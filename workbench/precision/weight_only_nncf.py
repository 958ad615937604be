"""Weight-only INT8/INT4 with NNCF's ``compress_weights`` on the ONNX model, for OpenVINO.

NNCF's ONNX writer stores 4-bit weights as ``MatMulNBits`` (below opset 21) and 8-bit weights as a
per-channel ``DequantizeLinear`` feeding the MatMul; OpenVINO turns both into its compressed-weight
kernels and quantizes activations on the fly (``DYNAMIC_QUANTIZATION_GROUP_SIZE``). NNCF chooses by
itself which layers a ``ratio`` below 1 leaves at the backup precision (by the Hessian of the
calibration data when there is data, else by the weights' rounding error); with calibration data it
also offers AWQ with scale estimation. Its ONNX writer's asymmetric 4-bit zero points are misread by
both engines (ONNX Runtime refuses them, OpenVINO's outputs are garbage), so 4 bits are symmetric here.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

import numpy as np
import onnx

from workbench.data.dataset import Dataset
from workbench.errors import BackendUnavailable, BuildError
from workbench.precision.nncf_int8 import INSTALL_HINT
from workbench.precision.weight_layers import LayerPlan
from workbench.progress import Progress

NNCF_ALGORITHMS = ("rtn", "awq")
#: AWQ and the Hessian ranking settle on a few dozen samples (NNCF's own default subset is 128).
SUBSET_SIZE = 64


def _feeds(calib: Dataset) -> Iterator[dict[str, np.ndarray]]:
    for i in range(len(calib)):
        yield {name: np.asarray(array, order="C") for name, array in calib.samples(i, i + 1).items()}


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
    mode = nncf.CompressWeightsMode
    kept = [layer.name for layer in plan.kept]
    if bits == 8:
        kwargs = {"mode": mode.INT8_SYM if symmetric else mode.INT8_ASYM}
        ignored = [*kept, *plan.embeddings]
    else:
        # NNCF keeps the embeddings and the last layer at the backup precision unless told all_layers; other
        # kept layers are left out of its scope, so they stay FP32 whatever the backup precision.
        by_nncf = plan.keeps_embeddings and plan.last is not None
        ignored = [name for name in kept if not (by_nncf and name == plan.last)]
        if not by_nncf:
            ignored += list(plan.embeddings)
        kwargs = {"mode": mode.INT4_SYM, "group_size": block_size, "ratio": ratio, "all_layers": not by_nncf,
                  "backup_mode": nncf.BackupMode.NONE if backup == "fp32" else nncf.BackupMode.INT8_ASYM}
        if algorithm == "awq":
            kwargs.update(awq=True, scale_estimation=True)
        if calib is not None and (algorithm == "awq" or ratio < 1):
            kwargs.update(dataset=nncf.Dataset(list(_feeds(calib))), subset_size=min(SUBSET_SIZE, len(calib)))
    progress.report("quantize", 0.1, f"NNCF: weights to {bits} bits")
    with contextlib.redirect_stdout(io.StringIO()):  # its progress bars and tables go to the terminal
        compressed = nncf.compress_weights(
            model, ignored_scope=nncf.IgnoredScope(names=ignored, types=["Conv", "ConvTranspose"], validate=False),
            advanced_parameters=AdvancedCompressionParameters(group_size_fallback_mode=GroupSizeFallbackMode.ADJUST),
            **kwargs,
        )
    counts = {op: sum(node.op_type == op for node in compressed.graph.node) for op in ("MatMulNBits",
                                                                                     "DequantizeLinear")}
    notes = [f"NNCF {kwargs['mode'].value}: {counts['MatMulNBits']} layers in 4 bits, "
             f"{counts['DequantizeLinear']} in 8 bits" + (", AWQ with scale estimation on calibration data"
                                                          if kwargs.get("awq") else "")]
    if bits == 8 and block_size:
        notes.append("NNCF stores 8-bit weights with one scale per output channel (no blocks)")
    return compressed, notes
