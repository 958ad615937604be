"""`workbench gc`: remove artifact folders that no run points at any more."""

from __future__ import annotations

import argparse

from workbench.runs.workspace import GC_MIN_AGE_S, Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gc", help="remove orphaned artifacts from the workspace")
    parser.add_argument("--min-age", type=float, default=GC_MIN_AGE_S / 60, metavar="MINUTES",
                        help="keep anything touched more recently: a build may be writing it (default: %(default)g)")
    parser.add_argument("--workspace", help="workspace folder (default: $WORKBENCH_WORKSPACE or ./workbench-workspace)")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    removed = Workspace(args.workspace).gc(min_age_s=args.min_age * 60)
    for path in removed.paths:
        print(f"removed {path}")
    for path in removed.kept_young:
        print(f"kept {path} (younger than {args.min_age:g} min)")
    print(f"freed {removed.freed_bytes / 1e6:.1f} MB")
    return 0
