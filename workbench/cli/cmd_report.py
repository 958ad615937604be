"""`workbench report`: one offline HTML file of chosen runs, and CSV/Parquet export of their table."""

from __future__ import annotations

import argparse

from workbench.cli.common import add_workspace_option
from workbench.cli.run_selection import select_runs
from workbench.errors import WorkbenchError
from workbench.report.html import write_report
from workbench.report.tables import export_table
from workbench.runs.frame import runs_frame
from workbench.runs.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write a self-contained HTML report and/or export the runs table")
    parser.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="runs to include (default: all, or --model)")
    parser.add_argument("--model", help="every run of this model (its name, or the path of its .onnx)")
    parser.add_argument("-o", "--output", help="HTML file to write, e.g. report.html")
    parser.add_argument("--csv", help="also write the runs table as CSV")
    parser.add_argument("--parquet", help="also write the runs table as Parquet")
    parser.add_argument("--title", default="Workbench report")
    add_workspace_option(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if not (args.output or args.csv or args.parquet):
        raise WorkbenchError("Nothing to write.", "Give -o report.html, --csv FILE or --parquet FILE.")
    if args.run_ids and args.model:
        raise WorkbenchError("Both run ids and --model were given.", "Choose runs by id or by model, not both.")
    runs = select_runs(Workspace(args.workspace), args.run_ids, args.model)
    if not runs:
        raise WorkbenchError("There are no runs to report.", "Build some with `workbench run` or `workbench sweep`.")
    if args.output:
        print(f"wrote {write_report(runs, args.output, args.title)} ({len(runs)} runs)")
    frame = runs_frame(runs)
    for path in (args.csv, args.parquet):
        if path:
            print(f"wrote {export_table(frame, path)}")
    return 0
