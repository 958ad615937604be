"""`workbench runs`: every run in the workspace, with what vanished from disk marked as missing."""

from __future__ import annotations

import argparse

from workbench.cli.common import add_workspace_option, print_json
from workbench.cli.run_selection import select_runs
from workbench.cli.runs_text import format_table
from workbench.runs.frame import runs_frame
from workbench.runs.store import missing_files
from workbench.runs.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("runs", help="list the runs in the workspace")
    parser.add_argument("--model", help="only runs of this model (its name, or the path of its .onnx)")
    add_workspace_option(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON list of run objects")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    runs = select_runs(Workspace(args.workspace), model=args.model)
    if args.json:
        print_json([{**run.to_dict(), "missing": missing_files(run)} for run in runs])
    else:
        print(format_table(runs_frame(runs)))
    return 0
