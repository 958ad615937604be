"""silero-vad on real speech: each ONNX file's parameters and FLOPs, and its FP32/INT8 variants judged.

The speech is synthesized by espeak-ng at 16 kHz (tests/silero_vad.py: calibration and evaluation
are different sentences); each variant is built and timed against FP32 side by side and judged on
the evaluation chunks. Run it alone on an idle machine for the timings:

    PYTHONPATH=. .venv/bin/python benchmarks/silero_vad.py [--repeats 30] [--batch 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from tests.silero_vad import silero_file, write_data
from workbench.build_options import BuildOptions
from workbench.data.loaders import load_data
from workbench.data.validate import validate_dataset
from workbench.errors import WorkbenchError
from workbench.model.flops import has_nested_compute
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model
from workbench.profiles.flops_measured import measured_flops
from workbench.runs.pipeline import Pipeline

FILES = ("silero_vad.onnx", "silero_vad_16k_op15.onnx", "silero_vad_op18_ifless.onnx")
PRECISIONS = ("fp32", "int8-dynamic", "int8")


def inspected(path: Path, eval_npz: Path) -> tuple[int, float]:
    """Parameters and MFLOP per 512-sample chunk, as `workbench inspect --eval` counts them."""
    model = load_model(path)
    info = inspect_model(model)
    data = validate_dataset(load_data(eval_npz, info.inputs), info.inputs, "evaluation")
    info = inspect_model(model, data.sample_shapes())
    if has_nested_compute(model.proto):
        info = dataclasses.replace(info, flops_per_node=measured_flops(model.path, data.samples(0, 1)))
    return info.parameters, info.flops / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--files", default=",".join(FILES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="silero-bench-") as tmp:
        calib, eval_npz = write_data(silero_file(), Path(tmp) / "speech")
        pipeline = Pipeline(Path(tmp) / "workspace")
        print(f"{'file':30} {'params':>8} {'MFLOP':>6} {'variant':13} {'speed-up':>8}  verdict")
        for name in args.files.split(","):
            path = silero_file(name)
            params, mflop = inspected(path, eval_npz)
            for precision in PRECISIONS:
                options = BuildOptions(precision, batch=args.batch, repeats=args.repeats, calib=str(calib),
                                       eval=str(eval_npz))
                try:
                    run = pipeline.run(path, options)
                except WorkbenchError as exc:
                    print(f"{name:30} {params:8,} {mflop:6.2f} {precision:13} {'-':>8}  failed: {exc}")
                    continue
                score = run.drift["task"]
                verdict = (f"{score['metric']} {score['value']:.4f} on {score['samples']} chunks, "
                           f"{score.get('state') or ('meets' if score['met'] else 'misses')} ({score['rule']})")
                print(f"{name:30} {params:8,} {mflop:6.2f} {precision:13} {run.speedup:7.2f}x  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
