"""`workbench sensitivity`: keep the fewest layers in FP32 that bring INT8 within a budget."""

from __future__ import annotations

import argparse
import sys

from workbench.cli.build_options import BuildOptionsArgs
from workbench.cli.common import add_output_options, print_json, stderr_progress
from workbench.runs.pipeline import Pipeline
from workbench.workflows.tune import METRICS, AccuracyBudget, sensitivity_search

OPTIONS = BuildOptionsArgs(precision="int8")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sensitivity", help="find the layers to keep in FP32 for an accuracy budget")
    parser.add_argument("model", help="path to an .onnx model")
    OPTIONS.add_parser_args(parser)
    parser.add_argument("--search-metric", default="accuracy", choices=METRICS,
                        help="what the search's budget limits (default accuracy)")
    parser.add_argument("--search-budget", type=float, default=0.5,
                        help="points allowed below FP32 (accuracy, top1_agreement) or the minimum cosine")
    parser.add_argument("--top-k", type=int, default=8, help="candidate layers tried, noisiest first")
    add_output_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    result = sensitivity_search(
        args.model, OPTIONS.parse(args), AccuracyBudget(args.search_metric, args.search_budget), top_k=args.top_k,
        pipeline=Pipeline(args.workspace), progress=stderr_progress(sys.stderr.isatty()),
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
