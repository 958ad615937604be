"""The names a build may be given (precisions, quantizers, calibration methods, pruning methods), in one
light module: the CLI's choices, the panels' menus and the checks of ``BuildOptions`` all read them here,
so listing a choice never imports ONNX Runtime, ``workbench.precision`` or ``workbench.pruning``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real

from workbench.errors import DataError

#: Weight-only precisions: MatMul/Gemm weights in 8 or 4 bits per block, activations in FP32.
WEIGHT_PRECISIONS = ("int8-weights", "int4-weights")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8-dynamic", *WEIGHT_PRECISIONS, "fp8")
#: Precisions whose activation scales come from calibration data (which then shapes the built file).
CALIBRATED_PRECISIONS = ("int8", "fp8")
#: Weight-only algorithms: round-to-nearest per block (data-free, the default), AWQ with scale estimation
#: (NNCF), GPTQ and HQQ (ONNX Runtime's, on PyTorch); the calibrated ones fit the weights to calibration data.
WEIGHT_ALGORITHMS = ("rtn", "awq", "gptq", "hqq")
CALIBRATED_WEIGHT_ALGORITHMS = ("awq", "gptq")


def uses_calibration(precision: str, weight_algorithm: str | None = None) -> bool:
    """Whether calibration data shapes the file: INT8/FP8 ranges, or weight-only weights fitted to it (AWQ, GPTQ)."""
    return precision in CALIBRATED_PRECISIONS or (
        precision in WEIGHT_PRECISIONS and weight_algorithm in CALIBRATED_WEIGHT_ALGORITHMS)


#: Who writes a weight-only file: ONNX Runtime's quantizer or NNCF, both writing ONNX that both engines run, or NNCF
#: on OpenVINO's own model writing OpenVINO IR (``openvino-native``, for the OpenVINO backends only).
WEIGHT_WRITERS = ("onnxruntime", "nncf", "openvino-native")
NATIVE_WEIGHT_WRITER = "openvino-native"
#: The precision of the layers int4-weights keeps out of 4 bits.
WEIGHT_BACKUPS = ("int8", "fp32")
#: Who writes a static INT8 file: ONNX Runtime's quantizer (the default) or NNCF, both writing Q/DQ ONNX, or NNCF
#: on OpenVINO's own model writing OpenVINO IR (the OpenVINO-native variant, for the OpenVINO backends only).
#: ``openvino-accuracy-control`` is the native variant by NNCF's accuracy-aware quantization.
QUANTIZERS = ("onnxruntime", "nncf", "openvino-native", "openvino-accuracy-control")
DEFAULT_QUANTIZER = "onnxruntime"
NATIVE_QUANTIZER = "openvino-native"
NATIVE_AC_QUANTIZER = "openvino-accuracy-control"
#: The quantizers whose file is OpenVINO IR, for the OpenVINO backends only.
NATIVE_QUANTIZERS = (NATIVE_QUANTIZER, NATIVE_AC_QUANTIZER)
#: Calibration methods by the names the CLI and the Build panel use.
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
#: Activation types of static INT8 (weights are always S8).
ACTIVATION_TYPES = ("u8", "s8")
#: What static INT8 quantizes: every op ONNX Runtime can, or only the convolutions and matrix products.
QUANTIZED_OPS = ("all", "compute")
PRUNE_METHODS = ("magnitude", "2:4", "channel")
#: What each pruning method buys, in the words the CLI help and the Build panel show beside the choice.
PRUNE_EFFECTS: dict[str, str] = {
    "magnitude": "zeroes the smallest weights: a smaller compressed file, no speed-up on dense kernels",
    "2:4": "2 of every 4 weights zero (50%): faster only on TensorRT sparse tensor cores (Ampere and newer)",
    "channel": "removes whole channels: a smaller dense model, faster on every backend",
}


def check_choice(what: str, value: object, choices: Iterable[object], flag: str | None = None) -> None:
    """A DataError naming the allowed values when ``value`` is not one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        where = f" ({flag})" if flag else ""
        raise DataError(f"Unknown {what} {value!r}.", f"Choose one of{where}: {', '.join(map(str, choices))}.")


def check_ratio(ratio: object) -> float:
    """The pruning ratio as a float, or an error that says what range is allowed."""
    if isinstance(ratio, bool) or not isinstance(ratio, Real) or not math.isfinite(float(ratio)):
        raise DataError(f"The pruning ratio {ratio!r} is not a number.",
                        "Give a fraction in [0, 1), e.g. 0.5 to remove half.")
    value = float(ratio)
    if not 0.0 <= value < 1.0:
        raise DataError(f"The pruning ratio {value:g} is outside [0, 1).",
                        "Use 0 for no pruning and less than 1 (e.g. 0.5) to remove that fraction.")
    return value


#: The level of every interval and three-state verdict unless the user asks another (``--confidence``).
CONFIDENCE = 0.95


def check_confidence(confidence: object) -> float:
    """A level an interval can be drawn at, as a float, or the user's error said plainly."""
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0.5 <= float(confidence) < 1:
        raise DataError(f"Confidence {confidence!r} is not a level an interval can be drawn at.",
                        "Give a share between 0.5 and 1, e.g. 0.95 or 0.99.")
    return float(confidence)
