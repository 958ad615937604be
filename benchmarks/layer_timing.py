"""Per-layer time against end-to-end time for every sample model, FP32 and INT8, on the CPU.

For each variant: the end-to-end median of a plain session, the sum of the per-layer medians
from a profiled session of the same model, threads and batch (timed in interleaved rounds), their
ratio, and where the difference goes. Run from the repository root:

    python benchmarks/layer_timing.py [--batch 1] [--threads 1] [--repeats 200] [--workspace DIR]

On a shared or busy machine the FP32 numbers show stalls, not the model: measure on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import onnxruntime

from workbench.build_options import BuildOptions
from workbench.runs.pipeline import Pipeline
from workbench.workflows.profile import profile_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of both sessions (0: ORT default)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--workspace", help="reuse builds from this workspace (default: a fresh temporary one)")
    args = parser.parse_args()
    print(f"onnxruntime {onnxruntime.__version__} on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical CPUs, {args.threads or 'default'} intra-op threads, batch {args.batch}, "
          f"{args.repeats} timed runs after {args.warmup} warm-up")
    header = (f"{'model':<14} {'precision':<9} {'end-to-end':>11} {'layer sum':>10} {'ratio':>6} "
              f"{'run sum':>9} {'ORT run':>9} {'executor':>9} {'binding':>8} {'profiler':>9} {'layers':>6}")
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        pipeline = Pipeline(args.workspace or tmp)
        print(header)
        print("-" * len(header))
        for model in sorted(Path("sample_models").glob("*/model.onnx")):
            name = model.parent.name
            for precision in args.precisions:
                options = BuildOptions(precision, batch=args.batch, warmup=args.warmup, repeats=args.repeats)
                profile = profile_model(model, options, threads=args.threads, pipeline=pipeline)
                print(f"{name:<14} {precision:<9} {profile.end_to_end_ms:9.4f}ms {profile.layer_sum_ms:8.4f}ms "
                      f"{profile.ratio:6.3f} {profile.kernel_run_ms:7.4f}ms {profile.session_ms:7.4f}ms "
                      f"{profile.session_ms - profile.kernel_run_ms:7.4f}ms "
                      f"{profile.profiled_end_to_end_ms - profile.session_ms:6.4f}ms "
                      f"{profile.profiled_end_to_end_ms - profile.end_to_end_ms:7.4f}ms {len(profile.layers):6d}")
    print("\nratio = layer sum (sum of per-layer medians) / end-to-end median (plain session)."
          "\nrun sum = median of each run's summed kernel time (differs from the layer sum when single calls stall);"
          "\nORT run = the profiled session's own model_run span; executor = ORT run - run sum;"
          "\nbinding = profiled end-to-end - ORT run;"
          "\nprofiler = profiled end-to-end - plain end-to-end (the profiler's own cost).")


if __name__ == "__main__":
    main()
