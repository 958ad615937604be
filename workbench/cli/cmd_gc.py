"""`workbench gc`: remove artifact folders that no run points at any more."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from workbench.cli.common import add_workspace_option
from workbench.progress import Progress, ProgressEvent
from workbench.runs.workspace import GC_MIN_AGE_S, Workspace

#: Run from a terminal, gc only lists what it would remove when it would remove more folders than this.
CONFIRM_OVER = 10


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gc", help="remove orphaned artifacts from the workspace")
    parser.add_argument("--min-age", type=float, default=GC_MIN_AGE_S / 60, metavar="MINUTES",
                        help="keep anything touched more recently: a build may be writing it (default: %(default)g)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be removed and remove nothing (the default in a terminal when "
                        f"more than {CONFIRM_OVER} folders would go)")
    parser.add_argument("--yes", action="store_true", help="remove without the terminal's dry run")
    parser.add_argument("--caches", action="store_true",
                        help="also remove the caches, which only cost time to rebuild: OpenVINO's compiled models "
                        "and the calibration ranges every INT8 build and tune trial reuses")
    add_workspace_option(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    workspace = Workspace(args.workspace)
    dry_run = args.dry_run
    if not dry_run and not args.yes and sys.stdin.isatty() and sys.stdout.isatty():
        planned = workspace.gc(min_age_s=args.min_age * 60, dry_run=True, caches=args.caches)
        dry_run = len(planned.paths) > CONFIRM_OVER
    removed = workspace.gc(min_age_s=args.min_age * 60, dry_run=dry_run, caches=args.caches,
                           progress=Progress(_say_waiting()))
    verb = "would remove" if dry_run else "removed"
    for path in removed.paths:
        print(f"{verb} {path}")
    why_kept = f"touched in the last {args.min_age:g} min" if args.min_age > 0 else "a running build's"
    for path in removed.kept_young:
        print(f"kept {path} ({why_kept})")
    for path in removed.kept_unclaimed:
        print(f"kept {path} (it was there before the run store was created; delete it by hand if no lost run needs it)")
    if not removed.paths:
        print("nothing to remove")
    elif dry_run:
        print(f"{len(removed.paths)} items ({removed.freed_bytes / 1e6:.1f} MB) would be removed; "
              "rerun with --yes to remove them")
    else:
        print(f"freed {removed.freed_bytes / 1e6:.1f} MB")
    return 0


def _say_waiting() -> Callable[[ProgressEvent], None]:
    """Say once on stderr that gc waits for a running build (it holds the build lock while removing)."""
    said: list[str] = []

    def report(event: ProgressEvent) -> None:
        if event.step == "wait" and not said:
            said.append(event.message)
            print(f"gc is {event.message} (a build's variant is on disk before its run is saved)", file=sys.stderr)
    return report
