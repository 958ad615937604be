"""Plain static INT8 versus the mixed variant the sensitivity search builds, on digits_vit (CPU).

The search keeps the fewest layers in FP32 that bring INT8 within an accuracy budget. When plain
INT8 already meets the budget asked for, there is nothing to search for, so the script says so
and tightens it: first to top-1 agreement with FP32 within the same points, then to an output
cosine a fraction (``--cosine-step``) of the way from plain INT8's cosine to 1. On digits_vit the
quantization noise is spread evenly over ~70 quantized tensors, so keeping any one layer in FP32
moves the cosine by 1e-5 at most: a small step is what a few kept layers can reach. Run from the
repository root:

    python benchmarks/sensitivity_vit.py [--metric accuracy] [--budget 0.5] [--top-k 8] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import onnxruntime
import pandas as pd

from workbench.build_options import BuildOptions
from workbench.runs.pipeline import Pipeline
from workbench.workflows.tune import METRICS, AccuracyBudget, sensitivity_search

MODEL = Path("sample_models/digits_vit/model.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--metric", default="accuracy", choices=METRICS)
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--cosine-step", type=float, default=0.01,
                        help="when tightening to cosine: the fraction of the way from plain INT8 to 1")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--workspace", help="reuse builds from this workspace (default: a fresh temporary one)")
    args = parser.parse_args()
    print(f"onnxruntime {onnxruntime.__version__}, {os.cpu_count()} logical CPUs, model {args.model}")
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        pipeline = Pipeline(args.workspace or tmp)
        plain = pipeline.run(args.model, BuildOptions("int8", repeats=args.repeats))
        drift = plain.drift
        print(f"FP32 accuracy {drift['reference_accuracy']:.4f}; plain INT8 accuracy {drift['accuracy']:.4f}, "
              f"top-1 agreement {drift['top1_agreement']:.4f}, cosine {drift['cosine_similarity']:.6f}, "
              f"{plain.latency_ms['median']:.3f} ms ({plain.speedup:.2f}x vs FP32)")
        budget = AccuracyBudget(args.metric, args.budget)
        if budget.meets(plain) and args.metric == "accuracy":
            print(f"plain INT8 already meets '{budget.describe()}'; tightening to top-1 agreement")
            budget = AccuracyBudget("top1_agreement", args.budget)
        if budget.meets(plain):
            cosine = drift["cosine_similarity"]
            target = cosine + args.cosine_step * (1 - cosine)
            print(f"plain INT8 already meets '{budget.describe()}'; tightening to output cosine >= {target:.7f} "
                  f"({args.cosine_step:.0%} of the way from plain INT8's {cosine:.7f} to FP32)")
            budget = AccuracyBudget("cosine", target)
        print(f"budget: {budget.describe()}")
        result = sensitivity_search(args.model, BuildOptions("int8", repeats=args.repeats), budget, top_k=args.top_k,
                                    pipeline=pipeline)
        with pd.option_context("display.width", 200, "display.max_colwidth", 60):
            print("\ncandidates (noisiest layers by local SQNR), ranked by recovery:")
            print(result.ranking.drop(columns=["run_id"]).to_string(index=False))
            print("\nplain versus mixed:")
            print(result.summary().drop(columns=["kept_nodes"]).to_string(index=False))
        print(f"\nkept in FP32: {', '.join(result.kept) or 'nothing'}")
        if result.mixed is not None and result.mixed.run_id != plain.run_id:
            cost = result.mixed.latency_ms["median"] / plain.latency_ms["median"]
            print(f"cost in speed: {cost:.2f}x plain INT8's latency; speed-up vs FP32 "
                  f"{plain.speedup:.2f}x -> {result.mixed.speedup:.2f}x")
        for note in result.notes:
            print("note:", note)
        print("within budget:", "yes" if result.met else "NO")


if __name__ == "__main__":
    main()
