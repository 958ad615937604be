"""FP8 (E4M3) weights and activations as a Q/DQ file: what FP8 tensor cores (Ada, Hopper, Blackwell) run.

ONNX Runtime's quantizer writes it, calibrated on the same data as static INT8: QuantizeLinear and
DequantizeLinear pairs of type FLOAT8E4M3FN (opset 19, the first that has them) around the
convolutions and matrix products, weights stored as E4M3. E4M3 is a floating-point grid, so a
tensor's scale fits its spread rather than its extremes: ONNX Runtime supports only its
Distribution calibration for FP8, which scales each tensor by its standard deviation on the
calibration data against E4M3's own. Scales are per tensor, which is what cuBLASLt's FP8 matrix
product takes (``gemm_float8``) and what TensorRT's FP8 layers take.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from workbench.data.dataset import Dataset
from workbench.errors import BuildError
from workbench.precision.calibration import calibration_ranges, unbinnable_tensors
from workbench.precision.int8 import COMPUTE_OP_TYPES, capped_calibration, prepared_model
from workbench.precision.quantizer_process import run_quantizer
from workbench.progress import Progress
from workbench.scratch import temp_folder

#: The first ONNX opset with FLOAT8E4M3FN QuantizeLinear/DequantizeLinear.
FP8_OPSET = 19


def quantize_fp8(src: Path, dst: Path, calib: Dataset, *, exclude_nodes: list[str] | None = None,
                 cache_dir: Path | None = None, progress: Progress | None = None) -> list[str]:
    """Write the E4M3 Q/DQ model of ``src`` to ``dst``, calibrated on ``calib``; returns notes."""
    progress = progress or Progress()
    calib, notes = capped_calibration(calib)
    with temp_folder("wb-fp8-") as tmp:
        cache = cache_dir or Path(tmp)
        prepared, prep_notes = prepared_model(src, cache)
        notes += prep_notes
        ranges, range_notes = calibration_ranges(prepared, calib, "distribution", cache, progress=progress)
        notes += range_notes
        unbinnable = unbinnable_tensors(ranges)
        unbinned = _nodes_touching(prepared, set(unbinnable))
        if unbinnable:
            notes.append(f"left out of FP8 calibration: {len(unbinnable)} tensors whose range is too narrow or too "
                         "wide for a histogram (such as an attention mask at float32's lowest value), so no E4M3 "
                         "scale fits them; " + (f"kept in FP32 the nodes they touch: {_listed(unbinned)}" if unbinned
                                     else "no quantized node reads or writes them"))
        exclude_nodes = list(dict.fromkeys([*(exclude_nodes or []), *unbinned]))
        warned = run_quantizer(
            "quantize_static", model_input=str(prepared), model_output=str(dst), calibration_data_reader=None,
            quant_format="QDQ", per_channel=False, activation_type="QFLOAT8E4M3FN", weight_type="QFLOAT8E4M3FN",
            calibrate_method="Distribution", op_types_to_quantize=list(COMPUTE_OP_TYPES),
            nodes_to_exclude=exclude_nodes, calibration_providers=["CPUExecutionProvider"],
            calibration_cache_path=str(ranges),
        )
    # ONNX Runtime upgrades the opset to 19 for FP8 and warns that it did: that is the point, not news.
    notes += [f"ONNX Runtime's quantizer warned: {w}" for w in dict.fromkeys(warned) if "opset" not in w][:3]
    model = onnx.load(str(dst), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    pairs = sum(node.op_type == "QuantizeLinear" for node in model.graph.node)
    if opset < FP8_OPSET or not pairs:
        raise BuildError(f"The FP8 quantizer wrote opset {opset} with {pairs} quantized tensors; FP8 needs opset "
                         f"{FP8_OPSET} and at least one convolution or matrix product.",
                         "Use fp16 or int8 for this model.")
    notes.append(f"FP8 Q/DQ (FLOAT8E4M3FN, opset {opset}): E4M3 weights and activations of the convolutions and "
                 f"matrix products, per-tensor scales from each tensor's spread on {calib.label} ({len(calib)} "
                 "samples, ONNX Runtime's Distribution calibration, the one it has for FP8)"
                 + (f"; kept in FP32: {', '.join(exclude_nodes)}" if exclude_nodes else ""))
    return notes


def _nodes_touching(model_path: Path, tensors: set[str]) -> list[str]:
    """The convolutions and matrix products that read or write one of ``tensors``: ONNX Runtime's quantizer
    needs a scale for each tensor around a node it quantizes, so these stay in FP32."""
    if not tensors:
        return []
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type in COMPUTE_OP_TYPES
            and tensors.intersection([*node.input, *node.output])]


def _listed(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")
