"""FLOPs from the shapes one real inference met, where shape inference cannot follow them.

ONNX shape inference does not carry data-dependent shapes (a Pad whose pads are computed, a
Slice of a Shape) into ``If`` branches, so a model that keeps its network in a branch (silero-vad)
counts 0 FLOPs statically. Given one real sample, ONNX Runtime's profile records the input and
output shapes of every kernel it ran, the taken branch only, which is the branch that costs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from workbench.model.flops import shape_flops
from workbench.profiles.ort_profile import KERNEL_SUFFIX
from workbench.scratch import temp_folder


def _dims(type_shapes: list[dict]) -> list[list[int]]:
    return [next(iter(entry.values())) for entry in type_shapes]


def measured_flops(path: Path, feed: Mapping[str, np.ndarray]) -> dict[str, float]:
    """FLOPs per kernel (by node name) of one inference of ``feed`` on ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    with temp_folder("wb-flops-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "flops")
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        session.run(None, dict(feed))
        trace = json.loads(Path(session.end_profiling()).read_text())
    result: dict[str, float] = {}
    for event in trace:
        if event.get("cat") != "Node" or not event.get("name", "").endswith(KERNEL_SUFFIX):
            continue
        args = event.get("args", {})
        outs = _dims(args.get("output_type_shape", []))
        flops = shape_flops(args.get("op_name", ""), _dims(args.get("input_type_shape", [])), outs[0] if outs else None)
        if flops is not None:
            result[event["name"][: -len(KERNEL_SUFFIX)]] = flops
    return result
