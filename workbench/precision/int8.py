"""INT8 variants with ONNX Runtime's quantization tools: static Q/DQ and dynamic (weights only).

The defaults encode what measurement on real CPUs showed: U8 activations with S8 weights on x86
(S8 activations gave no speed-up there), symmetric S8 for TensorRT, and shape inference retried
without the symbolic pass when it fails. Calibration streams batch by batch and its ranges are
cached (``precision.calibration``); ONNX Runtime's ``CalibMaxIntermediateOutputs`` is not used: in
1.32 it discards the collected ranges instead of merging them.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
from onnx import version_converter

from workbench.backends.base import QuantTarget
from workbench.data.dataset import Dataset
from workbench.model.flops import has_nested_compute
from workbench.model.loader import model_digest
from workbench.model.op_types import COMPUTE_NOTE, COMPUTE_OP_TYPES
from workbench.precision.calibration import (
    DEFAULT_PERCENTILE,
    calibration_ranges,
    ort_calibration_method,
)
from workbench.precision.fp32_inputs import feed_fp32_inputs
from workbench.precision.quantizer_process import run_quantizer
from workbench.precision.unquantizable import unquantizable_notes, unquantizable_paths
from workbench.precision.weight_range import seven_bit_weights
from workbench.progress import Progress
from workbench.recipe import Recipe
from workbench.scratch import child_env, temp_folder

#: Past a few hundred representative samples ranges barely move, while calibration time keeps growing.
MAX_CALIB_SAMPLES = 512
#: ONNX Runtime's ``QuantType`` names for the activation types a target wants.
ORT_ACTIVATION_TYPES = {"u8": "QUInt8", "s8": "QInt8"}

#: Ops quantized by the dynamic variant: the MatMul family, where weight-only INT8 pays off.
#: Conv is left out on purpose: ONNX Runtime's ConvInteger is slower than FP32 Conv on CPUs.
DYNAMIC_OP_TYPES = ["MatMul", "Attention", "Gather", "EmbedLayerNormalization", "LSTM"]


#: Ops that exist only in a quantized graph (Q/DQ and the integer kernels dynamic INT8 writes).
_QUANTIZED_OPS = ("QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM",
                  "QLinearConv", "QLinearMatMul")


def nothing_quantized_note(path: Path) -> list[str]:
    """Said when the quantizer left every op in FP32 because they sit inside control flow.

    ONNX Runtime's quantizer does not enter If/Loop/Scan subgraphs, so a model that keeps its network
    in an If branch (silero-vad) comes back unchanged: a variant that is FP32 under an INT8 name.
    """
    model = onnx.load(str(path), load_external_data=False)
    if not has_nested_compute(model) or any(n.op_type in _QUANTIZED_OPS for n in model.graph.node):
        return []
    return ["nothing was quantized: the model's compute ops sit inside If/Loop/Scan subgraphs, which ONNX "
            "Runtime's quantizer leaves in FP32, so this variant computes as FP32 does"]


def _warned(messages: list[str]) -> list[str]:
    """The quantizer's warnings as one build note instead of stray stderr lines."""
    if not messages:
        return []
    unique = list(dict.fromkeys(messages))
    more = f" (and {len(unique) - 3} more)" if len(unique) > 3 else ""
    return [f"ONNX Runtime's quantizer warned: {'; '.join(unique[:3])}{more}"]


_PREPROCESS = """
import sys
from onnxruntime.quantization import quant_pre_process
src, dst, skip_symbolic, skip_optimization = sys.argv[1:]
quant_pre_process(src, dst, skip_symbolic_shape=skip_symbolic == "1", skip_optimization=skip_optimization == "1")
"""


def _pre_process(src: Path, dst: Path, skip_symbolic_shape: bool, skip_optimization: bool) -> str | None:
    """One try of ORT's pre-pass, in a child process whose working folder is a scratch folder.

    ORT's symbolic shape inference saves ``sym_shape_infer_temp.onnx`` and a ``<uuid>.data`` into the
    current folder when it fails, and the pre-pass prints; run apart, neither reaches the user's folder
    or stdout, and this process never changes its own working folder. Returns the error, or None.
    """
    with temp_folder("wb-prepass-") as cwd:
        done = subprocess.run(
            [sys.executable, "-c", _PREPROCESS, str(src.resolve()), str(dst.resolve()),
             "1" if skip_symbolic_shape else "0", "1" if skip_optimization else "0"],
            cwd=cwd, capture_output=True, text=True, env=child_env(),
        )
    if done.returncode == 0 and dst.is_file():
        return None
    lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


def preprocess_for_quantization(src: Path, dst: Path) -> list[str]:
    """ORT's recommended pre-pass (optimise + shape inference), retried without the parts that fail."""
    notes = []
    attempts = [
        {},
        {"skip_symbolic_shape": True},
        {"skip_symbolic_shape": True, "skip_optimization": True},
    ]
    last = ""
    for options in attempts:
        error = _pre_process(src, dst, "skip_symbolic_shape" in options, "skip_optimization" in options)
        if error is not None and "No space left on device" in error:
            raise OSError(errno.ENOSPC, error)  # a full disk is no reason to try again: the caller says so
        if error is None:
            if options:
                notes.append(f"quantization pre-processing needed {', '.join(options)} (it failed otherwise)")
            return notes
        last = error
    notes.append(f"quantization pre-processing skipped: {last[:300]}")
    dst.write_bytes(src.read_bytes())
    return notes


#: Per-axis (per-channel) QuantizeLinear/DequantizeLinear exist from this opset on.
PER_AXIS_OPSET = 13
#: Upgrade older models for per-channel weights; off, the variant builder's ladder meets the backend's
#: refusal of per-axis Q/DQ at the old opset and rebuilds per-tensor instead.
UPGRADE_FOR_PER_CHANNEL = True


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def opset_for_per_channel(src: Path, dst: Path) -> tuple[Path, bool, list[str]]:
    """Per-channel weights need opset 13; an older model is upgraded with ``onnx.version_converter``
    (written to ``dst``), or quantized per-tensor when the upgrade fails. Returns (model, per_channel, notes)."""
    model = onnx.load(str(src), load_external_data=False)
    opset = default_opset(model)
    if opset >= PER_AXIS_OPSET or not UPGRADE_FOR_PER_CHANNEL:
        return src, True, []
    try:
        upgraded = version_converter.convert_version(onnx.load(str(src)), PER_AXIS_OPSET)
        onnx.checker.check_model(upgraded)
        onnx.save(upgraded, str(dst))
    except Exception as exc:  # the converter has no adapter for some op: per-tensor still works at this opset
        reason = " ".join(str(exc).split())[:200]
        return src, False, [f"per-channel INT8 needs opset {PER_AXIS_OPSET} and this model is opset {opset}; "
                            f"upgrading it failed ({reason}), so weights are quantized per-tensor"]
    return dst, True, [f"opset {opset} upgraded to {PER_AXIS_OPSET} (onnx.version_converter) for per-channel "
                       "weights, which need per-axis DequantizeLinear"]


def keep_graph(src: Path, dst: Path | None) -> None:
    """Keep the graph a quantizer saw at ``dst`` (the run records it): a hard link to the cached file where the
    file system allows one (no second copy on disk, and it outlives the cache), else a copy."""
    if dst is None:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def prepared_model(src: Path, cache_dir: Path) -> tuple[Path, list[str]]:
    """The quantization pre-pass of ``src``, done once per model (its external data included), kept in ``cache_dir``."""
    digest = model_digest(src)
    prepared = cache_dir / f"prepared-{digest}.onnx"
    notes_file = cache_dir / f"prepared-{digest}.json"
    if prepared.is_file() and notes_file.is_file():
        return prepared, json.loads(notes_file.read_text())
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f"prepared-{digest}.partial.onnx"
    notes = preprocess_for_quantization(src, partial)
    partial.replace(prepared)
    notes_file.write_text(json.dumps(notes))
    return prepared, notes


def capped_calibration(calib: Dataset) -> tuple[Dataset, list[str]]:
    """The calibration set cut to ``MAX_CALIB_SAMPLES`` (more samples barely move the ranges and cost memory),
    with the note that says so when it was cut."""
    if len(calib) <= MAX_CALIB_SAMPLES:
        return calib, []
    return calib.take(MAX_CALIB_SAMPLES), [f"calibrated on the first {MAX_CALIB_SAMPLES} of {len(calib)} samples"]


def quantize_int8_static(
    src: Path,
    dst: Path,
    calib: Dataset,
    recipe: Recipe | None = None,
    *,
    target: QuantTarget = "x86",
    cache_dir: Path | None = None,
    keep_seen: Path | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Write a Q/DQ model to ``dst`` as ``recipe`` says; returns notes on what was chosen and why.

    ``keep_seen`` receives the graph the quantizer actually saw (opset-upgraded, pre-processed): node and
    tensor names of the built file are that graph's.

    The recipe's ``activations`` (u8/s8) and ``symmetric`` default to what the target runs fastest;
    ranges come from the cache in ``cache_dir`` when this model and data were calibrated before.
    ``ops="compute"`` quantizes only the convolutions and matrix products: a detector whose output
    concatenates box coordinates in pixels with scores in [0, 1] loses every score to one shared INT8
    scale otherwise.
    """
    progress = progress or Progress()
    recipe = recipe or Recipe()
    method, per_channel, percentile, ops = recipe.calib_method, recipe.per_channel, recipe.percentile, recipe.ops
    exclude_nodes = list(recipe.exclude_nodes)
    reduce_range, range_note = seven_bit_weights(recipe.reduce_range, target)
    calib, notes = capped_calibration(calib)
    with temp_folder("wb-quant-") as tmp:
        cache = cache_dir or Path(tmp)
        if per_channel:
            src, per_channel, upgrade_notes = opset_for_per_channel(src, Path(tmp) / "opset13.onnx")
            notes += upgrade_notes
        prepared, prep_notes = prepared_model(src, cache)
        notes += prep_notes
        seen = onnx.load(str(prepared), load_external_data=False)
        indices, masks = unquantizable_paths(seen, exclude_nodes)
        notes += unquantizable_notes(indices, masks, "nodes_to_exclude")
        ranges, range_notes = calibration_ranges(prepared, calib, method, cache, percentile=percentile,
                                                 progress=progress)
        notes += range_notes
        symmetric = (target == "tensorrt") if recipe.symmetric is None else recipe.symmetric
        activations = recipe.activations or ("s8" if target == "tensorrt" else "u8")
        extra = {
            "ActivationSymmetric": symmetric,
            "WeightSymmetric": True,
        }
        notes += _warned(run_quantizer(
            "quantize_static",
            model_input=str(prepared),
            model_output=str(dst),
            calibration_data_reader=None,
            quant_format="QDQ",
            per_channel=per_channel,
            activation_type=ORT_ACTIVATION_TYPES[activations],
            weight_type="QInt8",
            reduce_range=reduce_range,
            calibrate_method=ort_calibration_method(method).name,
            nodes_to_exclude=exclude_nodes + indices + masks,
            op_types_to_quantize=list(COMPUTE_OP_TYPES) if ops == "compute" else None,
            calibration_providers=["CPUExecutionProvider"],
            calibration_cache_path=str(ranges),
            extra_options=extra,
        ))
        notes += nothing_quantized_note(dst)
        rewired = feed_fp32_inputs(dst, exclude_nodes, before=prepared) if exclude_nodes else 0
        keep_graph(prepared, keep_seen)
    shown = f"{method} {percentile or DEFAULT_PERCENTILE:g}" if method == "percentile" else method
    notes.append(
        f"static INT8 Q/DQ: {activations.upper()} activations ({'symmetric' if symmetric else 'asymmetric'}), "
        f"S8 weights, {'per-channel' if per_channel else 'per-tensor'}, {shown} calibration on {calib.label} "
        f"({len(calib)} samples)" + (f"; {COMPUTE_NOTE}" if ops == "compute" else "")
        + (f"; {range_note}" if range_note else "")
    )
    if exclude_nodes:
        notes.append(f"kept in FP32: {', '.join(exclude_nodes)}"
                     + (f" (on FP32 inputs: {rewired} Q/DQ input(s) bypassed)" if rewired else ""))
    return notes


def quantize_int8_dynamic(
    src: Path,
    dst: Path,
    recipe: Recipe | None = None,
    *,
    cache_dir: Path | None = None,
    keep_seen: Path | None = None,
) -> list[str]:
    """Weights-only INT8 for MatMul-heavy models (the recipe's scales and kept nodes); activations are
    quantized at run time. ``keep_seen`` receives the graph the quantizer saw, as for static INT8."""
    recipe = recipe or Recipe()
    per_channel = recipe.per_channel
    reduce_range, range_note = seven_bit_weights(recipe.reduce_range)
    notes: list[str] = [range_note] if range_note else []
    with temp_folder("wb-quant-") as tmp:
        if per_channel:
            src, per_channel, upgrade_notes = opset_for_per_channel(src, Path(tmp) / "opset13.onnx")
            notes += upgrade_notes
        prepared, prep_notes = prepared_model(src, cache_dir or Path(tmp))
        notes += prep_notes
        notes += _warned(run_quantizer(
            "quantize_dynamic",
            model_input=str(prepared),
            model_output=str(dst),
            op_types_to_quantize=DYNAMIC_OP_TYPES,
            per_channel=per_channel,
            weight_type="QInt8",
            reduce_range=reduce_range,
            nodes_to_exclude=list(recipe.exclude_nodes),
        ))
        notes += nothing_quantized_note(dst)
        keep_graph(prepared, keep_seen)
    notes.append(
        f"dynamic INT8: S8 weights ({'per-channel' if per_channel else 'per-tensor'}) for "
        f"{', '.join(DYNAMIC_OP_TYPES)}; activations quantized at run time; Conv left in FP32"
    )
    return notes
