"""Latency, FLOPs and accuracy of every pruning method at ratios 0, 0.25, 0.5 and 0.75 on the CNN samples.

Each row is one `Pipeline.run` at batch 8: the pruned variant and the unpruned FP32 model are timed
side by side in interleaved rounds in this process, so the speed-up is a ratio under the same load.
Accuracy is shown before and after the no-training repair on calib.npz (least-squares refit of
the layers that lost input channels; BatchNorm re-estimation / bias correction for the rest).
2:4 sparsity fixes its ratio at 50%, so it has one row per model.

    python benchmarks/pruning_table.py [--batch 8] [--repeats 50] [--precisions fp32 int8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import onnx

from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.model.flops import parameter_count
from workbench.runs.pipeline import Pipeline
from workbench.runs.prune_step import PRUNED_LAYERS

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"
CNN_SAMPLES = ("digits_cnn", "digits_resnet")
GRID = [(None, 0.0), *[(m, r) for m in ("magnitude", "channel") for r in (0.25, 0.5, 0.75)], ("2:4", 0.5)]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--samples", nargs="*", default=list(CNN_SAMPLES))
    parser.add_argument("--precisions", nargs="*", default=["fp32", "int8"])
    args = parser.parse_args()
    pipeline = Pipeline(tempfile.mkdtemp(prefix="wb-bench-"))
    print("| model | method | ratio | precision | latency ms | FP32 unpruned ms | speed-up | GFLOP/sample | "
          "params | accuracy % (before repair) | FP32 accuracy % |")
    print("|" + "|".join(["---"] * 11) + "|")
    for name in args.samples:
        model = SAMPLES / name / "model.onnx"
        unpruned_params = parameter_count(onnx.load(str(model)))
        for method, ratio in GRID:
            for precision in args.precisions:
                try:
                    run = pipeline.run(model, BuildOptions(precision, batch=args.batch, repeats=args.repeats, warmup=10,
                                                        prune_method=method, prune_ratio=ratio))
                except WorkbenchError as exc:
                    print(f"| {name} | {method or 'none'} | {ratio:g} | {precision} | failed: {exc} |")
                    continue
                layers = run.tables.get(PRUNED_LAYERS)
                pruned = json.loads((Path(layers).parent / "prune.json").read_text()) if layers else {}
                repair = pruned.get("repair") or {}
                before = f" ({_pct(repair['before'])})" if repair.get("metric") == "accuracy" else ""
                params = pruned.get("params_after")
                print(f"| {name} | {method or 'none'} | {ratio:g} | {precision} | {run.latency_ms['median']:.3f} | "
                      f"{run.reference_latency_ms['median']:.3f} | {run.speedup:.2f}x | "
                      f"{run.model_gflops:.4f} | {params if params is not None else unpruned_params} | "
                      f"{_pct(run.drift['accuracy'])}{before} | "
                      f"{_pct(run.drift['reference_accuracy'])} |", flush=True)


if __name__ == "__main__":
    main()
