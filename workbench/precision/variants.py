"""Build one precision variant of a model file, check the backend loads it, and never leave a
broken file behind: a failed conversion is retried with the blamed ops kept in FP32, or explained.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from workbench.backends.base import QuantTarget
from workbench.backends.error_text import error_text
from workbench.build_options import CALIBRATED_PRECISIONS
from workbench.data.dataset import Dataset
from workbench.errors import BuildError, DataError
from workbench.files import write_atomically
from workbench.model.graph_order import consumers
from workbench.model.op_types import QDQ_OP_TYPES
from workbench.precision.fallback import blame
from workbench.precision.fp8 import quantize_fp8
from workbench.precision.half import convert_half
from workbench.precision.half_guard import MAX_ROUNDS, PROBE_SAMPLES, SANE_COSINE, HalfGuard
from workbench.precision.int8 import keep_graph, quantize_int8_dynamic, quantize_int8_static
from workbench.precision.nncf_accuracy import DEFAULT_MAX_DROP, quantize_accuracy_control
from workbench.precision.nncf_int8 import quantize_int8_nncf
from workbench.precision.nncf_openvino import quantize_openvino_native
from workbench.precision.quantizers import DEFAULT_QUANTIZER, NATIVE_AC_QUANTIZER, NATIVE_QUANTIZER
from workbench.precision.weight_only import WEIGHT_PRECISIONS, build_weight_only, weight_choices
from workbench.progress import Progress
from workbench.recipe import Recipe
from workbench.scratch import temp_folder
from workbench.vocabulary import PRECISIONS

MAX_FALLBACKS = 40
#: Rebuilds of an INT8 model the backend refuses: per-tensor, then a few blamed nodes kept in FP32.
MAX_INT8_RETRIES = 6

#: Returns None when the backend loads the file, else its error text.
LoadCheck = Callable[[Path], "str | None"]
#: Turns an FP8 Q/DQ file (path, its FP32 source, probe samples) into what the backend runs; returns notes.
Fp8Finish = Callable[[Path, Path, "Dataset | None"], list[str]]


@dataclass
class VariantBuild:
    """The file produced and the story of how: shown under the run so nothing is silent."""

    path: Path
    precision: str
    notes: list[str] = field(default_factory=list)
    kept_fp32_ops: list[str] = field(default_factory=list)
    kept_fp32_nodes: list[str] = field(default_factory=list)


def _replace_atomically(tmp: Path, dst: Path) -> None:
    """Rename into place; from another file system, copy beside ``dst`` first so the rename stays atomic.
    An OpenVINO IR's weights (``.bin``) go first, so a present ``.xml`` always has its weights."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if tmp.suffix == ".xml":
        _replace_atomically(tmp.with_suffix(".bin"), dst.with_suffix(".bin"))
    try:
        os.replace(tmp, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_atomically(dst, lambda beside: shutil.copyfile(tmp, beside))


def _half_with_fallback(
    model: onnx.ModelProto, dtype: str, tmp: Path, check: LoadCheck, progress: Progress,
    ops: list[str] | None = None, nodes: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    ops, nodes = list(ops or []), list(nodes or [])
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
                f"keep in FP32: {error_text(error)}",
                "Use FP32 or INT8 for this model, or another backend.",
            )
    raise BuildError(f"{dtype.upper()} conversion still failed after {MAX_FALLBACKS} fall-backs.",
                     "Use FP32 or INT8 for this model.")


def _half_until_sane(
    model: onnx.ModelProto, dtype: str, tmp: Path, check: LoadCheck, progress: Progress, probe: Dataset,
    ops: list[str], nodes: list[str],
) -> tuple[list[str], list[str], list[str]]:
    """Run the loaded half variant beside FP32 on probe samples; keep what overflows or drifts in FP32 until
    the outputs are sane (see ``half_guard``). Returns (ops, nodes, notes); raises when it stays broken."""
    guard = HalfGuard(model, probe.inputs)
    label = dtype.upper()
    first = verdict = guard.verdict(onnx.load(str(tmp)))
    added: list[str] = []
    for round_ in range(MAX_ROUNDS + 1):
        if verdict.sane:
            break
        progress.report("convert", 0.9, f"{label} drifts ({verdict.describe()}): keeping nodes in FP32, round "
                        f"{round_ + 1}")
        more = guard.overflowing_nodes({*nodes}) if round_ == 0 else []
        if not more and round_ < MAX_ROUNDS:
            culprit = guard.worst_node(onnx.load(str(tmp)), {*nodes})
            more = [culprit] if culprit else []
        if not more:
            break
        added += more
        ops, nodes = _half_with_fallback(model, dtype, tmp, check, progress, ops, [*nodes, *more])
        before, verdict = verdict, guard.verdict(onnx.load(str(tmp)))
        if verdict.finite == before.finite and verdict.cosine <= before.cosine + 1e-4:
            break  # keeping that node bought nothing: the error is spread over the graph, not in one node
    samples = min(PROBE_SAMPLES, len(probe))
    if not verdict.sane:
        kept = f" after keeping {len(added)} nodes in FP32" if added else ""
        raise BuildError(
            f"The {label} variant is broken: on {samples} samples of {probe.label} its {verdict.describe()}"
            f"{kept} (FP32 is the reference; {SANE_COSINE} is the least a sane variant gives).",
            f"Use FP32 or INT8 for this model; {label} overflows or loses too much precision on this data.",
        )
    if not added:
        return ops, nodes, [f"{label} checked against FP32 on {samples} samples of {probe.label}: "
                            f"{verdict.describe()}"]
    return ops, nodes, [
        f"{label} drifted on {samples} samples of {probe.label} ({first.describe()}); kept {len(added)} nodes in "
        f"FP32 that overflow FP16's range or add the most drift, now {verdict.describe()}: {', '.join(added)}"
    ]


def _next_half_op(model: onnx.ModelProto, blocked: list[str]) -> str | None:
    """The first op type in graph order that still computes in FP16/BF16 and is not blocked yet."""
    half = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    typed = {v.name for v in model.graph.value_info if v.type.tensor_type.elem_type in half}
    typed |= {i.name for i in model.graph.initializer if i.data_type in half}
    for node in model.graph.node:
        if node.op_type not in blocked and node.op_type != "Cast" and any(name in typed for name in node.input):
            return node.op_type
    return None


def _int8_with_fallback(
    src: Path,
    out: Path,
    precision: str,
    recipe: Recipe,
    check: LoadCheck,
    *,
    calib: Dataset | None,
    target: QuantTarget,
    cache_dir: Path | None,
    keep_seen: Path | None,
    progress: Progress,
) -> tuple[list[str], str | None]:
    """Quantize, and when the backend refuses the result, climb the ladder: per-tensor weights first
    (per-axis Q/DQ is what old opsets and some kernels reject), then the node the error names kept in FP32.
    Returns the notes and the last load error (None once it loads)."""
    ladder: list[str] = []
    error: str | None = None
    for _ in range(MAX_INT8_RETRIES):
        if precision == "int8":
            assert calib is not None
            notes = quantize_int8_static(src, out, calib, recipe, target=target, cache_dir=cache_dir,
                                         keep_seen=keep_seen, progress=progress)
        else:
            notes = quantize_int8_dynamic(src, out, recipe, cache_dir=cache_dir, keep_seen=keep_seen)
        progress.report("check", 1.0, "checking the backend loads the variant")
        error = check(out)
        if error is None:
            return ladder + notes, None
        if recipe.per_channel:
            recipe = recipe.replace(per_channel=False)
            ladder.append(f"the per-channel model did not load ({error_text(error)}); rebuilt with per-tensor weights")
            continue
        culprits = [name for name in quantized_origin(out, blame(error).node) if name not in recipe.exclude_nodes]
        if not culprits:
            return ladder + notes, error  # nothing left to keep in FP32: the caller reports it
        recipe = recipe.replace(exclude_nodes=(*recipe.exclude_nodes, *culprits))
        ladder.append(f"the INT8 model did not load ({error_text(error)}); kept {', '.join(culprits)} in FP32 "
                      "and rebuilt")
    return ladder, error


def quantized_origin(model_path: Path, node_name: str | None) -> list[str]:
    """The original nodes behind a node of a quantized model: a Q/DQ node stands for the nodes it feeds,
    an integer kernel (``<name>_quant``) for the node it replaced."""
    if not node_name:
        return []
    graph = onnx.load(str(model_path), load_external_data=False).graph
    by_name = {node.name: node for node in graph.node}
    users = consumers(graph)
    node = by_name.get(node_name)
    if node is None:
        return []
    if node.op_type not in QDQ_OP_TYPES:
        return [node_name.removesuffix("_quant")]
    found, frontier = [], list(node.output)
    while frontier:
        for user in users.get(frontier.pop(), []):
            if user.op_type in QDQ_OP_TYPES:
                frontier += list(user.output)
            elif user.name not in found:
                found.append(user.name)
    return found


def _half_variant(src: Path, out: Path, build: VariantBuild, check: LoadCheck, probe: Dataset | None,
                  progress: Progress) -> None:
    """Write the FP16/BF16 file to ``out``, keeping in FP32 what the backend or the probe's outputs demand."""
    precision = build.precision
    model = onnx.load(str(src))
    ops, nodes = _half_with_fallback(model, precision, out, check, progress)
    if probe is not None and not probe.is_random:
        ops, nodes, checked = _half_until_sane(model, precision, out, check, progress, probe, ops, nodes)
        build.notes += checked
    build.kept_fp32_ops, build.kept_fp32_nodes = ops, nodes
    build.notes.append(f"{precision.upper()} with graph inputs/outputs kept FP32; numerically "
                       "fragile ops (reductions, exp/log/pow, normalisations) kept in FP32")
    if ops:
        build.notes.append(f"op types kept in FP32 (this backend has no {precision.upper()} kernel for "
                           f"them or for what it rewrites them into, or this opset has no "
                           f"{precision.upper()} form of them): {', '.join(ops)}")
    if nodes:
        build.notes.append(f"nodes kept in FP32 after the converter left them mistyped: {', '.join(nodes)}")


def _check_request(precision: str, calib: Dataset | None) -> None:
    """Refuse what no build can honour, before anything is written."""
    if precision not in PRECISIONS:
        raise BuildError(f"Unknown precision '{precision}'.", f"Choose one of: {', '.join(PRECISIONS)}.")
    if precision in CALIBRATED_PRECISIONS and calib is None:
        raise DataError(f"Static {'INT8' if precision == 'int8' else 'FP8'} needs calibration data.",
                        "Pass --calib with an .npz of representative inputs, or choose int8-dynamic.")


def _nncf_int8(src: Path, out: Path, calib: Dataset, recipe: Recipe, target: QuantTarget, task: str | None,
               time_cap_s: float | None, progress: Progress) -> list[str]:
    """INT8 by one of NNCF's three writers (the recipe's quantizer): accuracy control or plain ``nncf.quantize`` on
    OpenVINO's model, or ``nncf.quantize`` on the ONNX file; returns the build's notes."""
    exclude = list(recipe.exclude_nodes)
    if recipe.quantizer == NATIVE_AC_QUANTIZER:
        max_drop = recipe.max_drop if recipe.max_drop is not None else DEFAULT_MAX_DROP
        cap = {} if time_cap_s is None else {"time_cap_s": time_cap_s}
        return quantize_accuracy_control(src, out, calib, task=task, max_drop=max_drop, exclude_nodes=exclude,
                                         progress=progress, **cap)
    if recipe.quantizer == NATIVE_QUANTIZER:
        return quantize_openvino_native(src, out, calib, target=target, exclude_nodes=exclude, ops=recipe.ops,
                                        progress=progress)
    return quantize_int8_nncf(src, out, calib, target=target, exclude_nodes=exclude, ops=recipe.ops,
                              reduce_range=recipe.reduce_range, progress=progress)


def build_variant(
    src: Path,
    dst: Path,
    precision: str,
    recipe: Recipe | None = None,
    *,
    check: LoadCheck,
    target: QuantTarget = "x86",
    calib: Dataset | None = None,
    cache_dir: Path | None = None,
    keep_seen: Path | None = None,
    probe: Dataset | None = None,
    weight_runtime: str | None = "onnxruntime",
    finish_fp8: Fp8Finish | None = None,
    task: str | None = None,
    time_cap_s: float | None = None,
    progress: Progress | None = None,
) -> VariantBuild:
    """Write the ``precision`` variant of ``src`` to ``dst`` (atomically) and say what was done.

    ``recipe`` says how INT8 is made (the default recipe when None); ``probe`` (real samples, e.g. the
    calibration data) is what FP16/BF16 variants are checked on; ``task`` is what NNCF's accuracy control
    judges by (guessed from the outputs when None), stopped at ``time_cap_s`` (None: its own cap).
    ``weight_runtime`` is the engine family that runs the backend's weight-only files (None: it runs none);
    ``finish_fp8`` is the backend's last step for an FP8 file (``Backend.finish_fp8``). An INT8 build keeps the
    graph its quantizer saw at ``keep_seen`` (pruned, opset-upgraded, pre-processed: the built file's names are its)."""
    progress = progress or Progress()
    recipe = recipe or Recipe()
    _check_request(precision, calib)
    build = VariantBuild(dst, precision)
    # In the build's scratch folder, on the workspace's file system.
    with temp_folder("wb-variant-") as tmp:
        out = Path(tmp) / ("variant.xml" if dst.suffix == ".xml" else "variant.onnx")
        if precision == "fp32":
            out.write_bytes(src.read_bytes())
            build.notes.append("FP32: weights and types unchanged")
        elif precision in ("fp16", "bf16"):
            _half_variant(src, out, build, check, probe, progress)
        error: str | None = None
        if precision == "fp8":
            assert calib is not None
            build.notes += quantize_fp8(src, out, calib, exclude_nodes=list(recipe.exclude_nodes), cache_dir=cache_dir,
                                        progress=progress) + (finish_fp8(out, src, probe) if finish_fp8 else [])
            progress.report("check", 1.0, "checking the backend loads the variant")
            error = check(out)
        elif precision == "int8-dynamic" or (precision == "int8" and recipe.quantizer == DEFAULT_QUANTIZER):
            notes, error = _int8_with_fallback(src, out, precision, recipe, check, calib=calib, target=target,
                                               cache_dir=cache_dir, keep_seen=keep_seen, progress=progress)
            build.notes += notes
        else:
            if precision == "int8":
                assert calib is not None
                build.notes += _nncf_int8(src, out, calib, recipe, target, task, time_cap_s, progress)
                keep_graph(src, keep_seen)  # NNCF quantizes the file as given
            elif precision in WEIGHT_PRECISIONS:
                if weight_runtime is None:
                    raise BuildError(f"This backend runs no weight-only file ({precision}: MatMulNBits or blocked "
                                     "DequantizeLinear weights).", "Use onnxruntime-cpu, onnxruntime-cuda or openvino.")
                build.notes += build_weight_only(src, out, precision, runtime=weight_runtime, calib=calib,
                                                 progress=progress, **weight_choices(recipe, precision))
            progress.report("check", 1.0, "checking the backend loads the variant")
            error = check(out)
        if error is not None:
            raise BuildError(
                f"The {precision} variant was built but the backend refuses it: {error_text(error)}",
                "Try another precision or calibration method; the FP32 model is unaffected.",
            )
        _replace_atomically(out, dst)
    return build
