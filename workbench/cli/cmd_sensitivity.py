"""`workbench sensitivity`: keep the fewest layers in FP32 that bring INT8 within a budget."""

from __future__ import annotations

import argparse
import sys

from workbench.analysis.sensitivity import METRICS, SEARCHABLE_PRECISIONS, AccuracyBudget, sensitivity_search
from workbench.cli.common import print_json, stderr_progress
from workbench.runs.pipeline import Pipeline


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sensitivity", help="find the layers to keep in FP32 for an accuracy budget")
    parser.add_argument("model", help="path to an .onnx model")
    parser.add_argument("--precision", default="int8", choices=SEARCHABLE_PRECISIONS)
    parser.add_argument("--metric", default="accuracy", choices=METRICS)
    parser.add_argument("--budget", type=float, default=0.5,
                        help="points allowed below FP32 (accuracy, top1_agreement) or the minimum cosine")
    parser.add_argument("--top-k", type=int, default=8, help="candidate layers tried, noisiest first")
    parser.add_argument("--calib", help="calibration data (default: calib.npz beside the model)")
    parser.add_argument("--eval", help="evaluation data (default: eval.npz beside the model)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--workspace")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    result = sensitivity_search(
        args.model, args.precision, AccuracyBudget(args.metric, args.budget), top_k=args.top_k,
        calib=args.calib, eval=args.eval, batch=args.batch, pipeline=Pipeline(args.workspace),
        progress=stderr_progress(sys.stderr.isatty()),
    )
    if args.json:
        print_json(result.to_dict())
        return 0
    print(result.ranking.drop(columns=["run_id"]).to_string(index=False))
    print(result.summary().drop(columns=["kept_nodes"]).to_string(index=False))
    print("kept in FP32:", ", ".join(result.kept) or "nothing")
    for note in result.notes:
        print("note:", note)
    return 0 if result.met else 1
