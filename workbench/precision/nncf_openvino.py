"""The OpenVINO-native INT8 variant: NNCF applied to OpenVINO's own model, stored as OpenVINO IR.

The portable variant (``nncf_int8``) is NNCF's result written as a Q/DQ ONNX file, which every
backend runs. This one is what a user of OpenVINO's own tools gets: the ONNX file read by
OpenVINO (``read_model``), quantized by ``nncf.quantize`` on that ``ov.Model`` with the preset of
its model type (transformer: SmoothQuant, mixed preset; otherwise the performance preset), fast
bias correction, and an ignored scope given in the ONNX node names the rest of the workbench uses
(OpenVINO keeps them as its layer names, a node it splits under ``<node>/...``). The result is
an ``.xml`` + ``.bin`` pair that only the OpenVINO backends run; it exists to measure, on the same
data and in the same rounds, whether the portable file leaves speed on the table.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import onnx

from workbench.backends.base import QuantTarget
from workbench.data.dataset import Dataset
from workbench.errors import BackendUnavailable, BuildError
from workbench.memory.weight_values import drop_weight_values
from workbench.messages import library_message
from workbench.model.op_types import COMPUTE_NOTE
from workbench.precision.nncf_int8 import (
    INSTALL_HINT,
    calibration_items,
    is_transformer,
    non_compute_types,
    quantize_options,
)
from workbench.precision.quantizers import NATIVE_LABEL
from workbench.precision.unquantizable import unquantizable_notes, unquantizable_paths
from workbench.progress import Progress

#: OpenVINO's op types of the convolutions and matrix products (the ONNX ``COMPUTE_OP_TYPES`` as OpenVINO reads them).
OPENVINO_COMPUTE_TYPES = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData",
                          "MatMul")


def openvino_names(ov_model: Any, onnx_nodes: list[str], *, strict: bool = True) -> list[str]:
    """OpenVINO's layer names for ONNX nodes: the node's own name, or the layers it was split into
    (``<node>/...``, e.g. a Gemm's ``<node>/WithoutBiases``). A node with neither is refused when ``strict``
    (the user named it), else skipped (OpenVINO folded it away, so no quantizer can land on it)."""
    names = [op.get_friendly_name() for op in ov_model.get_ops() if op.get_type_name() != "Constant"]
    mapped, missing = [], []
    for node in onnx_nodes:
        found = [name for name in names if name == node or name.startswith(node + "/")]
        (mapped.extend(found) if found else missing.append(node))
    if missing and strict:
        raise BuildError(f"Nodes to keep in FP32 are not in OpenVINO's model: {', '.join(missing[:5])}.",
                         "Use node names as `workbench inspect` or the layer table shows them.")
    return mapped


def quantize_openvino_native(
    src: Path,
    dst: Path,
    calib: Dataset,
    *,
    target: QuantTarget = "x86",
    exclude_nodes: list[str] | None = None,
    ops: str = "all",
    progress: Progress | None = None,
) -> list[str]:
    """Write NNCF's INT8 model of OpenVINO's reading of ``src`` to ``dst`` (``.xml``, with its ``.bin``).

    ``ops="compute"`` quantizes only the convolutions and matrix products: OpenVINO then runs the element-wise
    ops, concatenations and resizes between them in float instead of behind a FakeQuantize each, which on a
    detector's many such ops is often faster than NNCF's default placement."""
    progress = progress or Progress()
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise BackendUnavailable("The OpenVINO-native quantizer is unavailable.", INSTALL_HINT) from exc
    logging.getLogger("nncf").setLevel(logging.ERROR)
    # Its graph only (types, index and mask paths): NNCF quantizes OpenVINO's reading, which holds the weights.
    proto = drop_weight_values(onnx.load(str(src), load_external_data=False))
    transformer = is_transformer(proto)
    ov_model = ov.Core().read_model(str(src))
    ignored = openvino_names(ov_model, list(exclude_nodes or []))
    indices, masks = unquantizable_paths(proto, exclude_nodes or [])
    index_layers = [name for name in openvino_names(ov_model, indices, strict=False) if name not in ignored]
    mask_layers = [name for name in openvino_names(ov_model, masks, strict=False) if name not in ignored]
    items = calibration_items(proto, calib)
    progress.report("quantize", 0.1, f"NNCF on OpenVINO's model, calibration on {len(items)} inferences")
    types = (non_compute_types((op.get_type_name() for op in ov_model.get_ops()), OPENVINO_COMPUTE_TYPES)
             if ops == "compute" else [])
    options = quantize_options(transformer, target, len(items), ignored + index_layers + mask_layers, types)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars would spoil `--json`
            quantized = nncf.quantize(ov_model, nncf.Dataset(items), **options)
    except Exception as exc:  # NNCF raises many types; the message is what the user needs
        raise BuildError(f"NNCF could not quantize OpenVINO's model: {library_message(exc)}",
                         "Use the portable NNCF file (--quantizer nncf).") from exc
    ov.save_model(quantized, str(dst), compress_to_fp16=False)
    progress.report("quantize", 1.0, "NNCF quantization done")
    kind = "transformer preset (SmoothQuant, mixed preset)" if transformer else "performance preset"
    notes = [f"{NATIVE_LABEL} INT8: NNCF {nncf.__version__} on OpenVINO {ov.__version__.split('-')[0]}'s own model, "
             f"{kind}, fast bias correction, calibrated on {calib.label} ({len(items)} inferences)"
             + (f", {COMPUTE_NOTE}" if types else "") + "; stored as OpenVINO IR, runs on the OpenVINO backends only"]
    if exclude_nodes:
        notes.append(f"kept in FP32 (NNCF ignored scope, {len(ignored)} OpenVINO layers): {', '.join(exclude_nodes)}")
    return notes + unquantizable_notes(indices if index_layers else [], masks if mask_layers else [],
                                       "NNCF ignored scope")
