"""Build one precision variant of a model file, check the backend loads it, and never leave a
broken file behind: a failed conversion is retried with the blamed ops kept in FP32, or explained.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from workbench.backends.base import QuantTarget
from workbench.data.dataset import Dataset
from workbench.errors import BuildError, DataError
from workbench.precision.fallback import blame
from workbench.precision.half import convert_half
from workbench.precision.int8 import CALIBRATION_METHODS, quantize_int8_dynamic, quantize_int8_static
from workbench.precision.nncf_int8 import quantize_int8_nncf
from workbench.progress import Progress
from workbench.runs.workspace import write_atomically

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8-dynamic")
#: Who writes static INT8 Q/DQ files: ONNX Runtime's quantizer (the default) or NNCF.
QUANTIZERS = ("onnxruntime", "nncf")
DEFAULT_QUANTIZER = "onnxruntime"
MAX_FALLBACKS = 40

#: Returns None when the backend loads the file, else its error text.
LoadCheck = Callable[[Path], "str | None"]


@dataclass
class VariantBuild:
    """The file produced and the story of how: shown under the run so nothing is silent."""

    path: Path
    precision: str
    notes: list[str] = field(default_factory=list)
    kept_fp32_ops: list[str] = field(default_factory=list)
    kept_fp32_nodes: list[str] = field(default_factory=list)


def _replace_atomically(tmp: Path, dst: Path) -> None:
    """Rename into place; from another file system, copy beside ``dst`` first so the rename stays atomic."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_atomically(dst, lambda beside: shutil.copyfile(tmp, beside))


def _half_with_fallback(
    model: onnx.ModelProto, dtype: str, tmp: Path, check: LoadCheck, progress: Progress
) -> tuple[list[str], list[str]]:
    ops: list[str] = []
    nodes: list[str] = []
    for attempt in range(MAX_FALLBACKS):
        progress.report("convert", attempt / MAX_FALLBACKS, f"{dtype.upper()} conversion, attempt {attempt + 1}")
        converted = convert_half(model, dtype, ops, nodes)
        onnx.save(converted, str(tmp))
        error = check(tmp)
        if error is None:
            return ops, nodes
        culprit = blame(error)
        present = {node.op_type for node in converted.graph.node}
        if culprit.op_type and culprit.op_type not in ops and culprit.op_type in present:
            ops.append(culprit.op_type)
        elif culprit.node and culprit.node not in nodes:
            nodes.append(culprit.node)
        elif culprit.op_type and (source := _next_half_op(converted, ops)):
            # The backend named an op it made itself while optimizing (ONNX Runtime turns Softmax
            # into ReduceMax and friends): keep the graph's own half-precision ops in FP32, in
            # graph order, until it loads.
            ops.append(source)
        else:
            raise BuildError(
                f"The {dtype.upper()} model does not load on this backend and the error names nothing to "
                f"keep in FP32: {error.splitlines()[0][:300]}",
                "Use FP32 or INT8 for this model, or another backend.",
            )
    raise BuildError(f"{dtype.upper()} conversion still failed after {MAX_FALLBACKS} fall-backs.",
                     "Use FP32 or INT8 for this model.")


def _next_half_op(model: onnx.ModelProto, blocked: list[str]) -> str | None:
    """The first op type in graph order that still computes in FP16/BF16 and is not blocked yet."""
    half = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    typed = {v.name for v in model.graph.value_info if v.type.tensor_type.elem_type in half}
    typed |= {i.name for i in model.graph.initializer if i.data_type in half}
    for node in model.graph.node:
        if node.op_type not in blocked and node.op_type != "Cast" and any(name in typed for name in node.input):
            return node.op_type
    return None


def build_variant(
    src: Path,
    dst: Path,
    precision: str,
    *,
    check: LoadCheck,
    target: QuantTarget = "x86",
    calib: Dataset | None = None,
    calib_method: str = "minmax",
    per_channel: bool = True,
    exclude_nodes: list[str] | None = None,
    quant_options: dict | None = None,
    cache_dir: Path | None = None,
    quantizer: str = DEFAULT_QUANTIZER,
    progress: Progress | None = None,
) -> VariantBuild:
    """Write the ``precision`` variant of ``src`` to ``dst`` (atomically) and say what was done."""
    progress = progress or Progress()
    if precision not in PRECISIONS:
        raise BuildError(f"Unknown precision '{precision}'.", f"Choose one of: {', '.join(PRECISIONS)}.")
    if precision == "int8" and calib is None:
        raise DataError("Static INT8 needs calibration data.",
                        "Pass --calib with an .npz of representative inputs, or choose int8-dynamic.")
    if calib_method not in CALIBRATION_METHODS:
        raise BuildError(f"Unknown calibration method '{calib_method}'.",
                         f"Choose one of: {', '.join(CALIBRATION_METHODS)}.")
    build = VariantBuild(dst, precision)
    # In the build's scratch folder (the pipeline points tempfile there), on the workspace's file system.
    with tempfile.TemporaryDirectory(prefix="wb-variant-") as tmp:
        out = Path(tmp) / "variant.onnx"
        if precision == "fp32":
            out.write_bytes(src.read_bytes())
            build.notes.append("FP32: weights and types unchanged")
        elif precision in ("fp16", "bf16"):
            model = onnx.load(str(src))
            ops, nodes = _half_with_fallback(model, precision, out, check, progress)
            build.kept_fp32_ops, build.kept_fp32_nodes = ops, nodes
            build.notes.append(f"{precision.upper()} with graph inputs/outputs kept FP32; numerically "
                               "fragile ops (reductions, exp/log/pow, normalisations) kept in FP32")
            if ops:
                build.notes.append(f"op types kept in FP32 (this backend has no {precision.upper()} kernel for "
                                   f"them or for what it rewrites them into, or this opset has no "
                                   f"{precision.upper()} form of them): {', '.join(ops)}")
            if nodes:
                build.notes.append(f"nodes kept in FP32 after the converter left them mistyped: {', '.join(nodes)}")
        elif precision == "int8" and quantizer == "nncf":
            assert calib is not None
            build.notes += quantize_int8_nncf(src, out, calib, target=target, exclude_nodes=exclude_nodes,
                                              progress=progress)
        elif precision == "int8":
            assert calib is not None
            build.notes += quantize_int8_static(
                src, out, calib, method=calib_method, per_channel=per_channel, target=target,
                exclude_nodes=exclude_nodes, cache_dir=cache_dir, progress=progress, **(quant_options or {}),
            )
        else:
            build.notes += quantize_int8_dynamic(src, out, per_channel=per_channel, exclude_nodes=exclude_nodes,
                                                 cache_dir=cache_dir)
        progress.report("check", 1.0, "checking the backend loads the variant")
        error = check(out)
        if error is not None:
            raise BuildError(
                f"The {precision} variant was built but the backend refuses it: {error.splitlines()[0][:300]}",
                "Try another precision or calibration method; the FP32 model is unaffected.",
            )
        _replace_atomically(out, dst)
    return build
