"""Who writes a static INT8 file, and how each is named on every face; imports nothing heavy, so a run's
label needs neither ONNX nor OpenVINO."""

from __future__ import annotations

from workbench.vocabulary import (
    DEFAULT_QUANTIZER,
    NATIVE_AC_QUANTIZER,
    NATIVE_QUANTIZER,
    NATIVE_QUANTIZERS,
    NATIVE_WEIGHT_WRITER,
    QUANTIZERS,
    WEIGHT_PRECISIONS,
)

__all__ = ["DEFAULT_QUANTIZER", "NATIVE_AC_QUANTIZER", "NATIVE_QUANTIZER", "NATIVE_QUANTIZERS", "QUANTIZERS",
           "artifact_name", "quantizer_label"]

#: The native variant's name in labels, tables, notes and reports.
NATIVE_LABEL = "OpenVINO-native"
QUANTIZER_LABELS = {DEFAULT_QUANTIZER: "", "nncf": "nncf", NATIVE_QUANTIZER: NATIVE_LABEL,
                    NATIVE_AC_QUANTIZER: f"{NATIVE_LABEL} accuracy control"}


def artifact_name(precision: str, quantizer: str, weight_writer: str | None = None) -> str:
    """The variant's file name in its artifact folder: OpenVINO IR for the native variants (static INT8 by an
    OpenVINO-native quantizer, weight-only by the OpenVINO-native writer), else ONNX."""
    native = (precision == "int8" and quantizer in NATIVE_QUANTIZERS) or (
        precision in WEIGHT_PRECISIONS and weight_writer == NATIVE_WEIGHT_WRITER)
    return "model.xml" if native else "model.onnx"


def quantizer_label(quantizer: str) -> str:
    """How a run's quantizer reads after its precision ('' for the default one)."""
    return QUANTIZER_LABELS.get(quantizer, quantizer)
