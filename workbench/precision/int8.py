"""INT8 variants with ONNX Runtime's quantization tools: static Q/DQ and dynamic (weights only).

The defaults encode what measurement on real CPUs showed: U8 activations with S8 weights on x86
(S8 activations gave no speed-up there), symmetric S8 for TensorRT, and shape inference retried
without the symbolic pass when it fails. Calibration streams batch by batch and its ranges are
cached (``precision.calibration``); ONNX Runtime's ``CalibMaxIntermediateOutputs`` is not used: in
1.32 it discards the collected ranges instead of merging them.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)

from workbench.backends.base import QuantTarget
from workbench.data.dataset import Dataset
from workbench.precision.calibration import DEFAULT_PERCENTILE, calibration_ranges, file_digest
from workbench.precision.fp32_inputs import feed_fp32_inputs
from workbench.progress import Progress

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}

#: Past a few hundred representative samples ranges barely move, while calibration time keeps growing.
MAX_CALIB_SAMPLES = 512
ACTIVATION_TYPES = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}

#: Ops quantized by the dynamic variant: the MatMul family, where weight-only INT8 pays off.
#: Conv is left out on purpose: ONNX Runtime's ConvInteger is slower than FP32 Conv on CPUs.
DYNAMIC_OP_TYPES = ["MatMul", "Attention", "Gather", "EmbedLayerNormalization", "LSTM"]


class _ThisThreadsWarnings(logging.Filter):
    """Takes the warnings logged by the thread that builds, and lets every other record through."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread == self.thread and record.levelno >= logging.WARNING:
            first = record.getMessage().strip().splitlines()[:1]
            if first and not first[0].startswith("Traceback"):  # a logged traceback is for --debug, not a note
                self.messages.append(first[0])
            return False
        return True


@contextlib.contextmanager
def quantizer_warnings(notes: list[str]) -> Iterator[None]:
    """Turn the quantizer's root-logger warnings into one build note instead of stray stderr lines.

    A filter on the root logger, limited to this thread, so a notebook's own logging meanwhile is untouched.
    """
    # A logger's filters see only records logged on it, not its children's: ONNX Runtime logs on the
    # root logger (the quantizer) and on its own module loggers (the pre-processing, with tracebacks).
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
                                       if name.startswith("onnxruntime")]
    collect = _ThisThreadsWarnings()
    for logger in loggers:
        logger.addFilter(collect)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(collect)
    if collect.messages:
        unique = list(dict.fromkeys(collect.messages))
        more = f" (and {len(unique) - 3} more)" if len(unique) > 3 else ""
        notes.append(f"ONNX Runtime's quantizer warned: {'; '.join(unique[:3])}{more}")


def preprocess_for_quantization(src: Path, dst: Path) -> list[str]:
    """ORT's recommended pre-pass (optimise + shape inference), retried without the parts that fail."""
    notes = []
    attempts = [
        {},
        {"skip_symbolic_shape": True},
        {"skip_symbolic_shape": True, "skip_optimization": True},
    ]
    for options in attempts:
        try:
            with quantizer_warnings([]):  # what it logs on failure is its traceback; the retry note says enough
                quant_pre_process(str(src), str(dst), **options)
            if options:
                notes.append(f"quantization pre-processing needed {', '.join(options)} (it failed otherwise)")
            return notes
        except Exception as exc:  # each failure mode of the pre-pass is a reason to try the next
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise  # a full disk is no reason to try again: the caller says so
            last = exc
    notes.append(f"quantization pre-processing skipped: {str(last).splitlines()[0][:200]}")
    dst.write_bytes(src.read_bytes())
    return notes


def prepared_model(src: Path, cache_dir: Path) -> tuple[Path, list[str]]:
    """The quantization pre-pass of ``src``, done once per model file and kept in ``cache_dir``."""
    digest = file_digest(src)
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


def quantize_int8_static(
    src: Path,
    dst: Path,
    calib: Dataset,
    *,
    method: str = "minmax",
    per_channel: bool = True,
    target: QuantTarget = "x86",
    exclude_nodes: list[str] | None = None,
    activations: str | None = None,
    symmetric: bool | None = None,
    percentile: float | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Write a Q/DQ model to ``dst``; returns notes on what was chosen and why.

    ``activations`` (u8/s8) and ``symmetric`` default to what the target runs fastest; ranges come
    from the cache in ``cache_dir`` when this model and data were calibrated before.
    """
    progress = progress or Progress()
    notes = []
    if len(calib) > MAX_CALIB_SAMPLES:
        notes.append(f"calibrated on the first {MAX_CALIB_SAMPLES} of {len(calib)} samples")
        calib = calib.take(MAX_CALIB_SAMPLES)
    with tempfile.TemporaryDirectory(prefix="wb-quant-") as tmp:
        cache = cache_dir or Path(tmp)
        prepared, prep_notes = prepared_model(src, cache)
        notes += prep_notes
        ranges, range_notes = calibration_ranges(prepared, calib, method, cache, percentile=percentile,
                                                 progress=progress)
        notes += range_notes
        symmetric = (target == "tensorrt") if symmetric is None else symmetric
        activations = activations or ("s8" if target == "tensorrt" else "u8")
        extra = {
            "ActivationSymmetric": symmetric,
            "WeightSymmetric": True,
        }
        with quantizer_warnings(notes), contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(prepared),
                str(dst),
                None,
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=ACTIVATION_TYPES[activations],
                weight_type=QuantType.QInt8,
                calibrate_method=CALIBRATION_METHODS[method],
                nodes_to_exclude=exclude_nodes or [],
                calibration_providers=["CPUExecutionProvider"],
                calibration_cache_path=str(ranges),
                extra_options=extra,
            )
        rewired = feed_fp32_inputs(dst, exclude_nodes, before=prepared) if exclude_nodes else 0
    shown = f"{method} {percentile or DEFAULT_PERCENTILE:g}" if method == "percentile" else method
    notes.append(
        f"static INT8 Q/DQ: {activations.upper()} activations ({'symmetric' if symmetric else 'asymmetric'}), "
        f"S8 weights, {'per-channel' if per_channel else 'per-tensor'}, {shown} calibration on {calib.label} "
        f"({len(calib)} samples)"
    )
    if exclude_nodes:
        notes.append(f"kept in FP32: {', '.join(exclude_nodes)}"
                     + (f" (on FP32 inputs: {rewired} Q/DQ input(s) bypassed)" if rewired else ""))
    return notes


def quantize_int8_dynamic(
    src: Path,
    dst: Path,
    *,
    per_channel: bool = True,
    exclude_nodes: list[str] | None = None,
    cache_dir: Path | None = None,
) -> list[str]:
    """Weights-only INT8 for MatMul-heavy models; activations are quantized at run time."""
    with tempfile.TemporaryDirectory(prefix="wb-quant-") as tmp:
        prepared, notes = prepared_model(src, cache_dir or Path(tmp))
        notes = list(notes)
        with quantizer_warnings(notes), contextlib.redirect_stdout(io.StringIO()):
            quantize_dynamic(
                str(prepared),
                str(dst),
                op_types_to_quantize=DYNAMIC_OP_TYPES,
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=exclude_nodes or [],
            )
    notes.append(
        f"dynamic INT8: S8 weights ({'per-channel' if per_channel else 'per-tensor'}) for "
        f"{', '.join(DYNAMIC_OP_TYPES)}; activations quantized at run time; Conv left in FP32"
    )
    return notes
