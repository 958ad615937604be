"""`workbench drift`: per-layer local and accumulated error of a variant against FP32."""

from __future__ import annotations

import argparse
import sys

from workbench.cli.build_options import BuildOptionsArgs
from workbench.cli.common import add_output_options, print_json, stderr_progress
from workbench.runs.pipeline import Pipeline
from workbench.runs.saved_tables import LAYER_DRIFT, save_run_table
from workbench.workflows.layer_drift import drift_for_run

OPTIONS = BuildOptionsArgs()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("drift", help="per-layer drift of a variant against the FP32 model")
    parser.add_argument("model", help="path to an .onnx model")
    OPTIONS.add_parser_args(parser)
    parser.add_argument("--samples", type=int, default=32, help="eval samples compared (default 32)")
    add_output_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    pipeline = Pipeline(args.workspace)
    progress = stderr_progress(sys.stderr.isatty())
    run = pipeline.run(args.model, OPTIONS.parse(args), progress=progress)
    report = drift_for_run(run, args.eval, samples=args.samples, pipeline=pipeline, progress=progress)
    save_run_table(run, LAYER_DRIFT, report.table, pipeline.workspace)  # for `workbench report` and the widgets
    if args.json:
        print_json({"run_id": run.run_id, "samples": report.samples, "notes": report.notes,
                    "layers": report.table.to_dict(orient="records")})
    else:
        print(report.table.drop(columns=["tensor"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        for note in report.notes:
            print("note:", note)
    return 0
