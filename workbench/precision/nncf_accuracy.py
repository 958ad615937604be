"""NNCF's accuracy-aware quantization on OpenVINO's own model, as one recipe of the search, with a time cap.

``nncf.quantize_with_accuracy_control`` quantizes OpenVINO's model, then reverts layers to FP32, most
harmful first (ranked on the samples with the largest error, NNCF's ranking subset), until the
metric drop is within ``max_drop``. Its metric here is the task's own (``tasks.judge``) against FP32,
on the calibration data: the run is then judged on the evaluation data, which the restorer never
saw. NNCF has no time limit and may run for many minutes, so it runs in a child process that is
stopped at ``TIME_CAP_S``; the layers it reverted are named by their ONNX nodes in the notes.

    python -m workbench.precision.nncf_accuracy SRC.onnx DST.xml CALIB.npz REQUEST.json   (what the build runs)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

from workbench.data.dataset import Dataset
from workbench.errors import BuildError
from workbench.precision.quantizers import NATIVE_LABEL
from workbench.progress import Progress

#: The longest one accuracy-controlled build may take (NNCF's restorer has no limit of its own).
TIME_CAP_S = 300.0
#: The largest drop of the task metric (absolute, against FP32 on the calibration data) NNCF may leave.
DEFAULT_MAX_DROP = 0.01
#: ONNX ops whose weights NNCF quantizes: the layers it can revert.
_WEIGHTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def quantize_accuracy_control(
    src: Path,
    dst: Path,
    calib: Dataset,
    *,
    task: str | None,
    max_drop: float = DEFAULT_MAX_DROP,
    exclude_nodes: list[str] | None = None,
    progress: Progress | None = None,
    time_cap_s: float = TIME_CAP_S,
) -> list[str]:
    """Write NNCF's accuracy-controlled INT8 IR of ``src`` to ``dst``; returns the notes (what it reverted)."""
    progress = progress or Progress()
    progress.report("quantize", 0.1, f"NNCF accuracy control on OpenVINO's model (at most {time_cap_s:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="wb-nncf-ac-", dir=dst.parent) as tmp:
        npz = Path(tmp) / "calib.npz"
        np.savez(npz, **calib.inputs)
        request = {"task": task, "max_drop": max_drop, "exclude_nodes": list(exclude_nodes or [])}
        cmd = [sys.executable, "-m", "workbench.precision.nncf_accuracy", str(src), str(dst), str(npz),
               json.dumps(request)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=time_cap_s, cwd=tmp,
                                  env={**os.environ, "TMPDIR": tmp})
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"NNCF's accuracy control was stopped after {time_cap_s:.0f} s (its time cap).",
                             "Use the OpenVINO-native variant with node fall-back, or a looser budget.") from exc
    if done.returncode != 0 or not dst.is_file():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise BuildError(f"NNCF's accuracy control failed: {last}", "Use the OpenVINO-native variant instead.")
    reverted = reverted_nodes(src, dst)
    notes = [f"{NATIVE_LABEL} INT8 by NNCF's quantize_with_accuracy_control: task metric against FP32 on "
             f"{calib.label} at most {max_drop:g} below it (the evaluation data stays unseen), NNCF's ranking "
             "subset (largest errors first) to pick the layers to revert"]
    shown = ", ".join(reverted[:12]) + (f" and {len(reverted) - 12} more" if len(reverted) > 12 else "")
    notes.append(f"layers NNCF left in FP32 ({len(reverted)}): {shown}" if reverted
                 else "NNCF reverted no layer: every weighted layer runs in INT8")
    progress.report("quantize", 1.0, "NNCF accuracy control done")
    return notes


def reverted_nodes(src: Path, ir: Path) -> list[str]:
    """The ONNX nodes with weights (Conv/MatMul/Gemm) that the IR does not run on INT8 weights."""
    from workbench.profiles.openvino_profile import quantized_by_native

    model = onnx.load(str(src), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    weights |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    quantized = set(quantized_by_native(model, str(ir)))
    return [node.name for node in model.graph.node if node.op_type in _WEIGHTED
            and any(name in weights for name in node.input[1:2]) and node.name not in quantized]


def _main(src: str, dst: str, calib_npz: str, request_json: str) -> None:
    """The child process: quantize with accuracy control and save the IR."""
    import contextlib
    import io
    import logging

    import nncf
    import openvino as ov

    from workbench.precision.index_paths import index_arithmetic
    from workbench.precision.mask_paths import mask_arithmetic
    from workbench.precision.nncf_int8 import is_transformer
    from workbench.precision.nncf_openvino import openvino_names
    from workbench.tasks.judge import Judge, TaskChoice

    logging.getLogger("nncf").setLevel(logging.ERROR)
    request = json.loads(request_json)
    data = dict(np.load(calib_npz))
    items = [{k: v[i:i + 1] for k, v in data.items()} for i in range(len(next(iter(data.values()))))]
    model = ov.Core().read_model(src)
    fp32 = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = [port.get_any_name() for port in model.outputs]
    references = {id(item[next(iter(item))]): dict(zip(names, fp32(item).values(), strict=True)) for item in items}
    choice = TaskChoice(request["task"])

    def validate(compiled, dataset) -> float:
        judge = Judge(choice)
        for item in dataset:
            outputs = dict(zip(names, compiled(item).values(), strict=True))
            judge.update(references[id(item[next(iter(item))])], outputs, None, item)
        return float(judge.result()["task"]["value"])

    proto = onnx.load(src, load_external_data=False)
    transformer = is_transformer(proto)
    # Index and mask arithmetic stay FP32 here too (``precision.index_paths``, ``precision.mask_paths``).
    ignored = openvino_names(model, request["exclude_nodes"])
    ignored += [name for name in openvino_names(model, index_arithmetic(proto), strict=False) if name not in ignored]
    ignored += [name for name in openvino_names(model, mask_arithmetic(proto), strict=False) if name not in ignored]
    options = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
    with contextlib.redirect_stdout(io.StringIO()):
        quantized = nncf.quantize_with_accuracy_control(
            model, nncf.Dataset(items), nncf.Dataset(items), validate, max_drop=request["max_drop"],
            drop_type=nncf.DropType.ABSOLUTE, subset_size=len(items),
            ignored_scope=nncf.IgnoredScope(names=ignored), **options)
    ov.save_model(quantized, dst, compress_to_fp16=False)


if __name__ == "__main__":
    _main(*sys.argv[1:5])
