"""`workbench sweep`: a grid of precisions and pruning ratios, the table, and the pick within a budget."""

from __future__ import annotations

import argparse
import sys

from workbench.backends.registry import DEFAULT_BACKEND
from workbench.cli.common import add_task_options, print_json, stderr_progress
from workbench.precision.int8 import CALIBRATION_METHODS
from workbench.report.runs_frame import format_table, runs_frame
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.runs.sweep import Sweep, accuracy_loss


def _names(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _ratios(text: str) -> list[float]:
    try:
        return [float(item) for item in _names(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sweep", help="build and measure a grid of variants; recommend one")
    parser.add_argument("model", help="path to an .onnx model")
    parser.add_argument("--precisions", type=_names, default=["fp32", "fp16", "int8"],
                        help="comma-separated, e.g. fp32,fp16,int8 (default)")
    parser.add_argument("--prune-methods", type=_names, default=[], help="comma-separated, e.g. channel")
    parser.add_argument("--prune-ratios", type=_ratios, default=[0.0], help="comma-separated; 0 means unpruned")
    parser.add_argument("--calib", help="calibration data (default: calib.npz beside the model, for int8)")
    parser.add_argument("--calib-method", default="minmax", choices=sorted(CALIBRATION_METHODS))
    parser.add_argument("--per-tensor", action="store_true", help="INT8 scales per tensor instead of per channel")
    parser.add_argument("--eval", help="evaluation data (default: eval.npz beside the model)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--backend", default=DEFAULT_BACKEND)
    parser.add_argument("--accuracy-budget", type=float, default=0.5, metavar="POINTS",
                        help="accuracy points a variant may lose against FP32 (top-1 agreement without labels)")
    add_task_options(parser)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--workspace", help="workspace folder (default: $WORKBENCH_WORKSPACE or ./workbench-workspace)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with runs and recommended")
    parser.set_defaults(func=handle)


def _announce(run: Run, reused: bool) -> None:
    """One stderr line per finished cell, terminal or not, so a CI log shows the sweep advancing."""
    loss, basis = accuracy_loss(run.drift)
    lost = "n/a" if loss is None else f"{loss:.2f} pts ({basis})"
    origin = "from the store" if reused else "built"
    print(f"  {run.spec.model_name} {run.label}: {run.speedup:.2f}x, lost {lost}, {origin}", file=sys.stderr)


def handle(args: argparse.Namespace) -> int:
    sweep = Sweep(
        args.model, args.precisions, args.prune_methods, args.prune_ratios, calib=args.calib, eval=args.eval,
        batch=args.batch, backend=args.backend, calib_method=args.calib_method, per_channel=not args.per_tensor,
        accuracy_budget=args.accuracy_budget, repeats=args.repeats, task=args.task, metric=args.metric,
        budget=args.budget,
    )
    print(f"sweep: {len(sweep.cells())} variants of {args.model}", file=sys.stderr)
    result = sweep.run(Pipeline(args.workspace), progress=stderr_progress(sys.stderr.isatty()), on_run=_announce)
    for cell, error in result.failed:
        print(f"error: {cell}: {error}", file=sys.stderr)
    if args.json:
        print_json(result.to_dict())
    else:
        best = result.recommended
        print(format_table(runs_frame(result.runs), marked=best.run_id if best else None))
        print(f"\nrecommended: {best.run_id} ({best.label}), {result.reason}" if best
              else f"\nrecommended: none, {result.reason}")
    return 2 if result.failed else 0
