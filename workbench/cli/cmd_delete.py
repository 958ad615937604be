"""`workbench delete RUN_ID...`: forget runs and free their artifacts when no other run uses them."""

from __future__ import annotations

import argparse

from workbench.cli.common import add_workspace_option
from workbench.runs.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("delete", help="delete runs and their artifacts")
    parser.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="run ids or unique prefixes")
    add_workspace_option(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    workspace = Workspace(args.workspace)
    for prefix in args.run_ids:
        removed = workspace.delete_run(prefix)
        freed = f"freed {removed.freed_bytes / 1e6:.1f} MB" if removed.paths else "artifacts kept (shared)"
        print(f"deleted {', '.join(removed.runs)}: {freed}")
    return 0
