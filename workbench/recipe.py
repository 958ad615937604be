"""How a variant is quantized, as one frozen, typed value: the shape of ONNX Runtime's ``StaticQuantConfig``.

``BuildOptions`` holds one ``Recipe``; the run spec, the variant builder, the quantizers, the reproduce
command and the tuning search's named recipes all read the same value, so a quantization choice is
spelled once. A field declared with ``option(...)`` is a *quantization option*: the CLI sets it with
``--quant-option NAME=VALUE``, the reproduce command writes it back, and the run spec records it only
when it differs from its default (so runs made before the field existed keep their ids). Adding such a
field here, plus its widget in the Build panel, is all a new quantization choice needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import DataError
from workbench.vocabulary import (
    ACTIVATION_TYPES,
    CALIBRATION_METHODS,
    DEFAULT_QUANTIZER,
    NATIVE_AC_QUANTIZER,
    NATIVE_QUANTIZER,
    QUANTIZED_OPS,
    QUANTIZERS,
    WEIGHT_ALGORITHMS,
    WEIGHT_BACKUPS,
    WEIGHT_PRECISIONS,
    WEIGHT_WRITERS,
    check_choice,
)

#: The precision whose file the static INT8 options shape.
_STATIC = ("int8",)
#: Weight-only options shape the weight precisions' files, whichever INT8 quantizer is chosen.
_WEIGHTS = {"precisions": WEIGHT_PRECISIONS, "quantizers": QUANTIZERS}
_INT4 = {"precisions": ("int4-weights",), "quantizers": QUANTIZERS}


def option(default: Any, *, choices: tuple = (), kind: type | None = None, low: float | None = None,
           high: float | None = None, quantizers: tuple[str, ...] = (DEFAULT_QUANTIZER,),
           precisions: tuple[str, ...] = _STATIC, help: str) -> Any:
    """A quantization option field: its allowed ``choices`` or its number ``kind`` within (``low``, ``high``],
    the ``quantizers`` that take it (set for another, it is refused rather than ignored) and the ``precisions``
    whose file it shapes (for another precision the run says it was ignored, and its spec leaves it out)."""
    return field(default=default, metadata={"choices": choices, "kind": kind, "low": low, "high": high,
                                            "quantizers": quantizers, "precisions": precisions, "help": help})


@dataclass(frozen=True)
class Recipe:
    """The quantizer and every choice it is given; defaults are what measurement found fastest per target.

    ``exclude_nodes`` are kept in higher precision (FP32; for int4-weights, the ``backup`` precision). ``None``
    for ``activations`` and ``symmetric`` means the target's own choice (U8 asymmetric on x86 CPUs, S8
    symmetric for TensorRT). The ``weight_*``, ``block_size``, ``accuracy_level``, ``keep_last``, ``int4_ratio``
    and ``backup`` options shape weight-only files (``precision.weight_only``).
    """

    quantizer: str = DEFAULT_QUANTIZER
    calib_method: str = "minmax"
    per_channel: bool = True
    exclude_nodes: tuple[str, ...] = ()
    activations: str | None = option(None, choices=ACTIVATION_TYPES, help="activation type (weights are S8)")
    symmetric: bool | None = option(None, choices=(True, False), help="symmetric activation ranges")
    percentile: float | None = option(None, kind=float, low=0.0, high=100.0,
                                      help="the percentile calibration keeps, e.g. 99.99")
    ops: str = option("all", choices=QUANTIZED_OPS, quantizers=(DEFAULT_QUANTIZER, "nncf", NATIVE_QUANTIZER),
                      help="compute: only convolutions and matrix products are quantized")
    reduce_range: bool | None = option(None, choices=(True, False), quantizers=(DEFAULT_QUANTIZER, "nncf"),
                                       help="7-bit weights (default: where an x86 CPU has no VNNI, whose 8-bit "
                                       "products saturate; NNCF's overflow fix on every layer)")
    max_drop: float | None = option(None, kind=float, low=0.0, high=1.0, quantizers=(NATIVE_AC_QUANTIZER,),
                                    help="the largest metric drop NNCF's accuracy control may leave (default: "
                                    "what the budget allows)")
    block_size: int = option(128, kind=int, low=8, high=4096, **_WEIGHTS,
                             help="weight-only: rows per block of 8/4-bit weights, a power of two of 16 or more")
    weight_symmetric: bool | None = option(None, choices=(True, False), **_WEIGHTS,
                                           help="weight-only: symmetric blocks (default asymmetric, NNCF's 4 bits "
                                           "symmetric)")
    weight_algorithm: str = option("rtn", choices=WEIGHT_ALGORITHMS, **_WEIGHTS,
                                   help="weight-only: rtn, awq (NNCF, on the calibration data), gptq (calibrated) "
                                   "or hqq (ONNX Runtime's, need PyTorch)")
    accuracy_level: int | None = option(None, kind=int, low=-1, high=4, **_WEIGHTS,
                                        help="weight-only: ONNX Runtime's MatMulNBits compute type 0-4 (4: int8 "
                                        "activations per block)")
    keep_last: bool = option(True, choices=(True, False), **_WEIGHTS,
                             help="weight-only: keep the last matrix layer (FP32, or int4-weights' backup)")
    int4_ratio: float = option(1.0, kind=float, low=0.0, high=1.0, **_INT4,
                               help="the share of the weights int4-weights stores in 4 bits, the rest in 8")
    backup: str = option("int8", choices=WEIGHT_BACKUPS, **_INT4,
                         help="the precision of the layers int4-weights keeps: int8 or fp32")
    weight_writer: str | None = option(None, choices=WEIGHT_WRITERS, **_WEIGHTS,
                                       help="who writes the weight-only file: onnxruntime (default), nncf (AWQ's) or "
                                            "openvino-native (NNCF on OpenVINO's model, OpenVINO IR)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude_nodes", tuple(dict.fromkeys(self.exclude_nodes)))
        check_choice("quantizer", self.quantizer, QUANTIZERS, "--quantizer")
        check_choice("calibration method", self.calib_method, CALIBRATION_METHODS, "--calib-method")
        for name, value in self.options().items():
            _check_option(name, value)
        foreign = [name for name in self.options() if self.quantizer not in QUANT_OPTIONS[name]["quantizers"]]
        if foreign:
            owners = sorted({q for name in foreign for q in QUANT_OPTIONS[name]["quantizers"]})
            raise DataError(f"The quantization options {', '.join(foreign)} are for {' or '.join(owners)}, not "
                            f"{self.quantizer}; NNCF chooses its own by preset.",
                            f"Drop them, or use --quantizer {owners[0]}.")

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def options(self) -> dict[str, Any]:
        """The quantization options set away from their defaults, by name: what the run spec records."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name in QUANT_OPTIONS and getattr(self, f.name) != f.default}

    def options_for(self, precision: str) -> dict[str, Any]:
        """The options set away from their defaults that shape a ``precision`` file: what its spec records."""
        return {name: value for name, value in self.options().items()
                if precision in QUANT_OPTIONS[name]["precisions"]}

    def with_options(self, options: Mapping[str, Any]) -> Recipe:
        """A copy with quantization options set by name; a value may be the CLI's text (``"true"``, ``"99.9"``)."""
        for name in options:
            if name not in QUANT_OPTIONS:
                raise DataError(f"Unknown quantization option '{name}'.", f"Use: {', '.join(QUANT_OPTIONS)}.")
        return self.replace(**{name: _typed(name, value) for name, value in options.items()})

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "exclude_nodes": list(self.exclude_nodes)}


#: Every quantization option with its field's description (choices, number range, help).
QUANT_OPTIONS: dict[str, Mapping[str, Any]] = {
    f.name: f.metadata for f in dataclasses.fields(Recipe) if "help" in f.metadata}


def _typed(name: str, value: Any) -> Any:
    """The CLI's text as the field's type: a choice matched by its text, a number parsed."""
    if not isinstance(value, str):
        return value
    spec = QUANT_OPTIONS[name]
    for choice in spec["choices"]:
        if str(choice).lower() == value.strip().lower():
            return choice
    if spec["kind"] is not None:
        try:
            return spec["kind"](value)
        except ValueError:
            raise DataError(f"Quantization option {name}={value!r} is not a number.", "Give e.g. "
                            f"{name}={spec['high'] or 1}.") from None
    return value


def _check_option(name: str, value: Any) -> None:
    spec = QUANT_OPTIONS[name]
    if spec["choices"]:
        if value not in spec["choices"] or isinstance(value, bool) != isinstance(spec["choices"][0], bool):
            raise DataError(f"Quantization option {name}={value!r} is not one of "
                            f"{', '.join(str(c).lower() for c in spec['choices'])}.", "Pick one of them.")
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            spec["kind"] is int and value != int(value)):
        raise DataError(f"Quantization option {name}={value!r} is not a number.", f"Give {spec['help']}.")
    low, high = spec["low"], spec["high"]
    if (low is not None and value <= low) or (high is not None and value > high):
        raise DataError(f"Quantization option {name}={value!r} is outside ({low}, {high}].",
                        f"Give {spec['help']}.")
