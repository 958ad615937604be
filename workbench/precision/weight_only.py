"""Weight-only INT8/INT4 variants: matrix weights stored in 8 or 4 bits per block, activations in FP32.

The family transformer users reach for first on CPUs: the file shrinks 4-8x and memory-bound matrix
products (small batches, large MatMuls) get faster, while nothing needs calibrating unless a
calibrated algorithm (GPTQ, AWQ) is asked for. Each engine has its own writer: ONNX Runtime's
``matmul_nbits_quantizer`` for the ONNX Runtime backends, NNCF's ``compress_weights`` for OpenVINO
(``weight_only_ort`` and ``weight_only_nncf``); this module checks the choices, plans the layers
(``weight_layers``) and says what was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnx

from workbench.data.dataset import Dataset
from workbench.errors import BuildError, DataError
from workbench.measure.footprint import file_megabytes
from workbench.precision.weight_layers import (
    DEFAULT_KEEP,
    SMALL_COMPUTE_SHARE,
    LayerPlan,
    compute_share,
    int4_sensitivity,
    name_nodes,
    plan_layers,
    split_by_ratio,
)
from workbench.progress import Progress
from workbench.recipe import Recipe
from workbench.vocabulary import (
    CALIBRATED_WEIGHT_ALGORITHMS,
    NATIVE_WEIGHT_WRITER,
    WEIGHT_ALGORITHMS,
    WEIGHT_BACKUPS,
    WEIGHT_PRECISIONS,
    WEIGHT_WRITERS,
)

BITS = {"int8-weights": 8, "int4-weights": 4}
#: Engine families that run weight-only files (``Backend.weight_runtime``). Both run either writer's file
#: (``vocabulary.WEIGHT_WRITERS``); ONNX Runtime's is the default for both (see ``weight_only_nncf`` for why).
RUNTIMES = ("onnxruntime", "openvino")
#: The writer an algorithm needs where only one library has it.
ALGORITHM_TOOL = {"awq": "nncf", "gptq": "onnxruntime", "hqq": "onnxruntime"}
DEFAULT_BLOCK_SIZE = Recipe.block_size


def weight_choices(recipe: Recipe, precision: str) -> dict:
    """``build_weight_only``'s choices from the recipe: its weight-only options and its kept layers (the
    embedding tables always, the last layer unless ``keep_last`` is off, and ``exclude_nodes``)."""
    return {"block_size": recipe.block_size, "symmetric": recipe.weight_symmetric,
            "algorithm": recipe.weight_algorithm, "accuracy_level": recipe.accuracy_level,
            "keep": (*recipe.exclude_nodes, "embeddings", *(("last",) if recipe.keep_last else ())),
            "ratio": recipe.int4_ratio if precision == "int4-weights" else 1.0,
            "backup": recipe.backup, "writer": recipe.weight_writer}


def writer_for(algorithm: str, writer: str | None) -> str:
    """The writer asked for, else the one the algorithm needs, else ONNX Runtime's; a mismatch is refused."""
    needed = ALGORITHM_TOOL.get(algorithm)
    if writer is not None and writer not in WEIGHT_WRITERS:
        raise BuildError(f"No weight-only writer '{writer}'.", f"Use {' or '.join(WEIGHT_WRITERS)}.")
    if writer is not None and needed is not None and writer != needed:
        raise BuildError(f"{algorithm.upper()} is {needed}'s algorithm, not {writer}'s.",
                         f"Drop weight_writer={writer}, or use weight_algorithm=rtn.")
    return writer or needed or "onnxruntime"


def _check(precision: str, runtime: str, *, block_size: int, algorithm: str, accuracy_level: int | None,
           ratio: float, backup: str, calib: Dataset | None) -> None:
    """Every choice checked before any work: refused in words, never silently ignored."""
    if precision not in WEIGHT_PRECISIONS:
        raise BuildError(f"'{precision}' is not a weight-only precision.", f"Use {' or '.join(WEIGHT_PRECISIONS)}.")
    if runtime not in RUNTIMES:
        raise BuildError(f"No weight-only runtime '{runtime}'.", f"Use {' or '.join(RUNTIMES)}.")
    if not isinstance(block_size, int) or block_size < 16 or block_size & (block_size - 1):
        raise BuildError(f"Block size {block_size!r} is not a power of two of 16 or more.", "Use e.g. 32, 64 or 128.")
    if algorithm not in WEIGHT_ALGORITHMS:
        raise BuildError(f"No weight-only algorithm '{algorithm}'.", f"Use one of {', '.join(WEIGHT_ALGORITHMS)}.")
    if algorithm in CALIBRATED_WEIGHT_ALGORITHMS and calib is None:
        raise DataError(f"{algorithm.upper()} needs calibration data.",
                        "Pass --calib with an .npz of representative inputs, or use "
                        "--quant-option weight_algorithm=rtn.")
    if calib is not None and algorithm in CALIBRATED_WEIGHT_ALGORITHMS and calib.is_random:
        raise DataError(f"{algorithm.upper()} fitted to random data would fit the noise.",
                        "Pass real calibration data with --calib, or use --quant-option weight_algorithm=rtn.")
    if algorithm in ("gptq", "hqq") and precision == "int8-weights":
        raise BuildError(f"ONNX Runtime's {algorithm.upper()} writes 4-bit weights only.",
                         "Use int4-weights, or rtn for int8-weights.")
    if accuracy_level is not None and (runtime != "onnxruntime" or accuracy_level not in range(5)):
        raise BuildError(f"Accuracy level {accuracy_level!r} cannot be honoured here.",
                         "It is ONNX Runtime's MatMulNBits setting, 0-4 (4: int8 compute), for the ONNX Runtime "
                         "backends; OpenVINO quantizes activations on the fly by itself.")
    if not (isinstance(ratio, int | float) and 0 < ratio <= 1):
        raise BuildError(f"Ratio {ratio!r} of layers in 4 bits is outside (0, 1].", "Use e.g. 0.8 or 1.")
    if ratio < 1 and precision != "int4-weights":
        raise BuildError("A ratio of layers in 4 bits applies to int4-weights only.", "Drop it, or use int4-weights.")
    if backup not in WEIGHT_BACKUPS:
        raise BuildError(f"Backup precision '{backup}' is not one of {', '.join(WEIGHT_BACKUPS)}.", "Use int8 or fp32.")


def set_accuracy_level(model: onnx.ModelProto, level: int) -> onnx.ModelProto:
    """Set MatMulNBits' ``accuracy_level`` (the compute type ONNX Runtime may use) on every node, whoever wrote it."""
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            kept = [a for a in node.attribute if a.name != "accuracy_level"]
            del node.attribute[:]
            node.attribute.extend([*kept, onnx.helper.make_attribute("accuracy_level", level)])
    return model


def _layer_notes(model: onnx.ModelProto, plan: LayerPlan, four: Sequence, eight: Sequence,
                 kept_fp32: Sequence) -> list[str]:
    notes = [f"{len(four)} layers in 4 bits, {len(eight)} in 8 bits, {len(kept_fp32)} kept FP32"
             + (f": {', '.join(layer.name for layer in kept_fp32)}" if kept_fp32 else "")]
    if plan.embeddings:
        notes.append(f"embeddings kept FP32 (ONNX Runtime's writer quantizes tables to 4 bits only, NNCF's ONNX "
                     f"writer breaks 4-bit tables): {', '.join(plan.embeddings)}")
    share = compute_share(model, [layer.name for layer in (*four, *eight)])
    if share is not None and share < SMALL_COMPUTE_SHARE:
        notes.append(f"the quantized layers do {share:.1%} of this model's multiply-adds (the rest is in other "
                     "layers): expect a smaller file, not a faster model")
    return notes


def build_weight_only(
    src: Path,
    dst: Path,
    precision: str,
    *,
    runtime: str = "onnxruntime",
    writer: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    symmetric: bool | None = None,
    algorithm: str = "rtn",
    accuracy_level: int | None = None,
    keep: Sequence[str] = DEFAULT_KEEP,
    ratio: float = 1.0,
    backup: str = "int8",
    calib: Dataset | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Write the weight-only variant of ``src`` to ``dst``; returns the notes saying what was done.

    ``runtime`` is the engine family the file is for (``onnxruntime`` or ``openvino``); ``writer`` None is the
    one the algorithm needs (AWQ: NNCF), else ONNX Runtime's. ``symmetric`` None is asymmetric, except for
    NNCF's 4 bits (see ``weight_only_nncf``); ``accuracy_level`` is ONNX Runtime's, for its runtime only. ``keep``
    names layers, or ``embeddings``/``last``, kept out of the precision's bits: FP32 for int8-weights, the
    ``backup`` precision for int4-weights; ``ratio`` of the other weights go to 4 bits, the rest to 8."""
    progress = progress or Progress()
    _check(precision, runtime, block_size=block_size, algorithm=algorithm, accuracy_level=accuracy_level,
           ratio=ratio, backup=backup, calib=calib)
    tool = writer_for(algorithm, writer)
    if tool == NATIVE_WEIGHT_WRITER and runtime != "openvino":
        raise BuildError(f"The {NATIVE_WEIGHT_WRITER} weight-only file is OpenVINO IR, which only the OpenVINO "
                         "backends run.", "Use --backend openvino, or drop weight_writer for the portable file.")
    bits = BITS[precision]
    symmetric = (tool != "onnxruntime" and bits == 4) if symmetric is None else symmetric
    model = name_nodes(onnx.load(str(src)))
    plan = plan_layers(model, keep, precision)
    if bits == 8:
        four, eight, kept_fp32 = [], list(plan.quantized), list(plan.kept)
    else:
        four, eight = split_by_ratio(plan.quantized, int4_sensitivity(model, plan.quantized, block_size), ratio) \
            if ratio < 1 else (list(plan.quantized), [])
        kept_fp32 = list(plan.kept) if backup == "fp32" else []
        eight += [] if backup == "fp32" else list(plan.kept)
    scheme = f"block {block_size}, {'symmetric' if symmetric else 'asymmetric'}"
    if tool == NATIVE_WEIGHT_WRITER:
        from workbench.precision.weight_only_openvino import compress_weights_openvino

        notes = [f"{precision}: NNCF compress_weights on OpenVINO's model, {algorithm.upper()}, {scheme}, ratio "
                 f"{ratio:g}, backup {backup.upper()}", *_layer_notes(model, plan, four, eight, kept_fp32)]
        notes += compress_weights_openvino(src, dst, plan, bits, ratio=ratio, block_size=block_size,
                                           symmetric=symmetric, algorithm=algorithm, backup=backup, calib=calib,
                                           progress=progress)
        return [*notes, _size_note(src, dst)]
    if tool == "onnxruntime":
        from workbench.precision.weight_only_ort import quantize_weights_ort

        notes = [f"{precision}: ONNX Runtime MatMulNBits, {algorithm.upper()}, {scheme}"]
        notes += _layer_notes(model, plan, four, eight, kept_fp32)
        out, more = quantize_weights_ort(model, four, eight, block_size=block_size, symmetric=symmetric,
                                         algorithm=algorithm, calib=calib, progress=progress)
    else:
        from workbench.precision.weight_only_nncf import compress_weights_nncf

        notes = [f"{precision}: NNCF compress_weights, {algorithm.upper()}, {scheme}, ratio {ratio:g}, "
                 f"backup {backup.upper()}"]
        out, more = compress_weights_nncf(model, plan, bits, ratio=ratio, block_size=block_size, symmetric=symmetric,
                                          algorithm=algorithm, backup=backup, calib=calib, progress=progress)
    if accuracy_level is not None:
        out = set_accuracy_level(out, accuracy_level)
        more.append(f"MatMulNBits accuracy level {accuracy_level}"
                    + (" (activations quantized to int8 per block on the fly)" if accuracy_level == 4 else ""))
    onnx.save(out, str(dst))
    return [*notes, *more, _size_note(src, dst)]


def _size_note(src: Path, dst: Path) -> str:
    """The file's size before and after, an OpenVINO IR's weights (``.bin``) included."""
    before, after = file_megabytes(src), file_megabytes(dst)
    return f"file {before:.2f} MB -> {after:.2f} MB ({before / max(after, 1e-6):.1f}x smaller)"
