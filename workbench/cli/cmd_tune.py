"""`workbench tune`: the fastest variant whose task metric stays within its budget, on every backend here."""

from __future__ import annotations

import argparse
import sys

from workbench.backends.registry import backend_names
from workbench.build_options import BuildOptions
from workbench.cli.build_options import add_task_options
from workbench.cli.common import add_output_options, print_json, stderr_progress
from workbench.runs.pipeline import Pipeline
from workbench.workflows.tune import DEFAULT_TIME_BUDGET, tune


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune", aliases=["sensitivity"], help="find the fastest variant within the task's accuracy budget "
        "(alias: sensitivity)",
        description="Tries quantization recipes (calibration method, per-tensor, S8, fragile ops kept FP32), "
        "then keeps the fewest quantized nodes in FP32 that meet the budget; every trial is a stored run.")
    parser.add_argument("model", help="path to an .onnx model")
    add_task_options(parser)
    parser.add_argument("--calib", help="calibration data (default: calib.npz beside the model)")
    parser.add_argument("--eval", help="evaluation data (default: eval.npz beside the model)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--backend", action="append", metavar="NAME",
                        help=f"search only this backend (repeatable; default: every one that runs here, of "
                        f"{', '.join(backend_names())})")
    parser.add_argument("--precisions", help="comma-separated precisions to search (default: what each backend "
                        "speeds up: int8, int8-dynamic for MatMul-heavy models, fp16 on GPUs)")
    parser.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET, metavar="SECONDS",
                        help=f"stop starting trials after this long (default {DEFAULT_TIME_BUDGET:g})")
    parser.add_argument("--repeats", type=int, default=BuildOptions.repeats, help="timed runs per trial")
    add_output_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    options = BuildOptions(calib=args.calib, eval=args.eval, batch=args.batch, repeats=args.repeats,
                           task=args.task, metric=args.metric, budget=args.budget)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()] if args.precisions else None
    result = tune(args.model, options, backends=args.backend, precisions=precisions, time_budget=args.time_budget,
                  pipeline=Pipeline(args.workspace), progress=stderr_progress(sys.stderr.isatty()))
    if args.json:
        print_json(result.to_dict())
    else:
        for trial in result.trials:
            score = trial.score
            flag = "BROKEN" if score.broken else ("ok" if score.met else "misses")
            print(f"{trial.run.run_id}  {trial.backend:16s} {trial.speedup:5.2f}x  {score.metric} {score.value:.4f} "
                  f"{flag:6s} {trial.step:7s} {trial.description}")
        print(result.explain())
    return 0 if result.recommended is not None else 1
