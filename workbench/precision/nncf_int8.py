"""NNCF's post-training quantization as a second INT8 quantizer, writing a Q/DQ ONNX file as well.

NNCF (OpenVINO's compression library) quantizes the ONNX model directly: its presets for
transformers (``model_type=TRANSFORMER``, which turns on SmoothQuant and keeps the numerically
fragile ops out of INT8) and its fast bias correction often keep more accuracy than a plain MinMax
pass, and its placement of Q/DQ nodes is the one OpenVINO fuses best. The file is ordinary Q/DQ
ONNX, so it runs on every backend, not only on OpenVINO.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from workbench.backends.base import QuantTarget
from workbench.data.dataset import Dataset
from workbench.errors import BackendUnavailable, BuildError
from workbench.messages import library_message
from workbench.model.op_types import COMPUTE_NOTE, COMPUTE_OP_TYPES
from workbench.precision.qdq_unsigned import unsigned_activations
from workbench.precision.unquantizable import unquantizable_notes, unquantizable_paths
from workbench.precision.weight_range import seven_bit_weights
from workbench.progress import Progress

INSTALL_HINT = "NNCF is not installed: pip install 'onnx-workbench[openvino]' (the cpu and lab extras include it)."
#: Op types whose presence marks an attention model: the transformer preset (SmoothQuant) applies.
_ATTENTION_OPS = frozenset({"Softmax", "LayerNormalization", "Attention", "MultiHeadAttention"})


def is_transformer(model: onnx.ModelProto) -> bool:
    """MatMul beside Softmax or LayerNormalization: the shape of an attention model."""
    ops = {node.op_type for node in model.graph.node}
    return "MatMul" in ops and bool(ops & _ATTENTION_OPS)


def _samples(calib: Dataset, fixed_batch: int | None) -> Iterator[dict[str, np.ndarray]]:
    """Calibration items as NNCF wants them: one feed dict per inference."""
    step = fixed_batch or 1
    for start in range(0, len(calib) - step + 1, step):
        yield {name: np.asarray(array, order="C") for name, array in calib.samples(start, start + step).items()}


def calibration_items(model: onnx.ModelProto, calib: Dataset) -> list[dict[str, np.ndarray]]:
    """The calibration set as NNCF's inferences: one sample each, or the model's fixed batch."""
    first = model.graph.input[0].type.tensor_type.shape.dim
    fixed_batch = first[0].dim_value if first and first[0].HasField("dim_value") else None
    return list(_samples(calib, fixed_batch))


def quantize_options(transformer: bool, target: QuantTarget, subset_size: int, ignored: list[str],
                     ignored_types: Sequence[str] = (), seven_bit: bool = False) -> dict[str, Any]:
    """``nncf.quantize``'s settings, the same for the portable Q/DQ file and OpenVINO's own model: the preset by
    model type (transformer: SmoothQuant, mixed preset), fast bias correction, the nodes kept as ignored scope,
    and ``ignored_types`` (``ops="compute"``: every op type but the convolutions and matrix products).
    ``seven_bit``: every layer's weights keep 7 bits (NNCF's overflow fix, by default on the first layer only)."""
    import nncf

    # The op types come from the model itself, so only the node names (the user's) need NNCF's check.
    scope = (nncf.IgnoredScope(names=ignored, types=list(ignored_types), validate=False) if ignored_types
             else nncf.IgnoredScope(names=ignored))
    options: dict[str, Any] = {
        "preset": nncf.QuantizationPreset.MIXED if transformer else nncf.QuantizationPreset.PERFORMANCE,
        "target_device": nncf.TargetDevice.CPU if target == "x86" else nncf.TargetDevice.ANY,
        "subset_size": subset_size,
        "fast_bias_correction": True,
        "ignored_scope": scope,
    }
    if transformer:
        options["model_type"] = nncf.ModelType.TRANSFORMER
    if seven_bit:
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

        options["advanced_parameters"] = AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)
    return options


def non_compute_types(types: Iterable[str], compute: Iterable[str]) -> list[str]:
    """The op types ``ops="compute"`` leaves out of INT8: every type of the model but its compute layers (and the
    graph's own inputs, outputs and constants, which carry no quantizer)."""
    return sorted(set(types) - set(compute) - {"Parameter", "Result", "Constant"})


def quantize_int8_nncf(
    src: Path,
    dst: Path,
    calib: Dataset,
    *,
    target: QuantTarget = "x86",
    exclude_nodes: list[str] | None = None,
    ops: str = "all",
    reduce_range: bool | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Write NNCF's Q/DQ model of ``src`` to ``dst``; returns notes on what was chosen. ``ops="compute"``
    quantizes only the convolutions and matrix products (NNCF's ignored scope by type); ``reduce_range`` as the
    recipe's (None: 7-bit weights where this CPU's 8-bit products saturate in ONNX Runtime)."""
    progress = progress or Progress()
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable("The nncf quantizer is unavailable.", INSTALL_HINT) from exc
    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = onnx.load(str(src))
    items = calibration_items(model, calib)
    transformer = is_transformer(model)
    known = {node.name for node in model.graph.node}
    missing = [name for name in exclude_nodes or [] if name not in known]
    if missing:
        raise BuildError(f"Nodes to keep in FP32 are not in the model: {', '.join(missing[:5])}.",
                         "Use node names as `workbench inspect` or the layer table shows them.")
    indices, masks = unquantizable_paths(model, exclude_nodes or [])
    progress.report("quantize", 0.1, f"NNCF calibration on {len(items)} inferences")
    types = non_compute_types((n.op_type for n in model.graph.node), COMPUTE_OP_TYPES) if ops == "compute" else []
    seven_bit, range_note = seven_bit_weights(reduce_range, target)
    options = quantize_options(transformer, target, len(items), list(exclude_nodes or []) + indices + masks, types,
                               seven_bit)
    try:
        # NNCF draws progress bars on stdout, which must stay clean for `--json`.
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(model, nncf.Dataset(items), **options)
    except Exception as exc:  # NNCF raises many types; the message is what the user needs
        raise BuildError(f"NNCF could not quantize the model: {library_message(exc)}",
                         "Use the default quantizer (--quantizer onnxruntime).") from exc
    unsigned = unsigned_activations(quantized)
    onnx.save(quantized, str(dst))
    progress.report("quantize", 1.0, "NNCF quantization done")
    kind = ("transformer preset (model_type=TRANSFORMER: SmoothQuant, mixed preset: asymmetric activations)"
            if transformer else "performance preset (symmetric)")
    notes = [f"static INT8 Q/DQ by NNCF {nncf.__version__}: {kind}, fast bias correction, "
             f"calibrated on {calib.label} ({len(items)} inferences)" + (f"; {COMPUTE_NOTE}" if types else "")
             + (f"; {range_note}" if range_note else "")]
    if unsigned:
        notes.append(f"{unsigned} asymmetric activation quantizers written as uint8 (the same grid), so OpenVINO "
                     "runs their matrix products unsigned x signed, as it runs NNCF's result on its own model")
    if exclude_nodes:
        notes.append(f"kept in FP32 (NNCF ignored scope): {', '.join(exclude_nodes)}")
    return notes + unquantizable_notes(indices, masks, "NNCF ignored scope")
