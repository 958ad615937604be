"""Latency, speed-up and drift of every precision on every sample model, in one table.

Each row is one `Pipeline.run`: the variant and the FP32 reference are timed side by side in
interleaved rounds in this process, so the speed-up is a ratio measured under the same load.

    python benchmarks/precision_table.py [--batch 8] [--repeats 50] [--samples digits_resnet ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.runs.pipeline import Pipeline
from workbench.vocabulary import PRECISIONS

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{value * 100:6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--samples", nargs="*", default=None)
    parser.add_argument("--precisions", nargs="*", default=list(PRECISIONS))
    args = parser.parse_args()
    names = args.samples or sorted(p.name for p in SAMPLES.iterdir() if (p / "model.onnx").is_file())
    pipeline = Pipeline(tempfile.mkdtemp(prefix="wb-bench-"))
    header = ("| model | precision | batch | latency median ms | p90 ms | FP32 median ms | speed-up | "
              "top-1 agree % | accuracy % | FP32 accuracy % | cosine | max abs err |")
    print(header)
    print("|" + "|".join(["---"] * 12) + "|")
    for name in names:
        for precision in args.precisions:
            try:
                run = pipeline.run(SAMPLES / name / "model.onnx",
                                   BuildOptions(precision, batch=args.batch, repeats=args.repeats, warmup=10))
            except WorkbenchError as exc:
                print(f"| {name} | {precision} | {args.batch} | failed: {exc} |")
                continue
            lat, ref, drift = run.latency_ms, run.reference_latency_ms, run.drift
            print(f"| {name} | {precision} | {args.batch} | {lat['median']:.3f} | {lat['p90']:.3f} | "
                  f"{ref['median']:.3f} | {run.speedup:.2f}x | {_pct(drift['top1_agreement'])} | "
                  f"{_pct(drift['accuracy'])} | {_pct(drift['reference_accuracy'])} | "
                  f"{drift['cosine_similarity']:.5f} | {drift['max_abs_error']:.4g} |", flush=True)


if __name__ == "__main__":
    main()
