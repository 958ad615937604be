"""`workbench` command line: every sub-command lives in its own `cmd_*.py` module.

Errors the user can fix print one line on stderr and exit 2; anything else exits 1 with one line
too, and the traceback only appears with --debug.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from workbench.cli.json_stdout import json_only_stdout
from workbench.errors import Cancelled, WorkbenchError
from workbench.messages import library_message
from workbench.version import __version__

#: Command modules under workbench.cli; each exposes ``register(subparsers)``.
COMMANDS = [
    "cmd_run",
    "cmd_inspect",
    "cmd_backends",
    "cmd_profile",
    "cmd_drift",
    "cmd_tune",
    "cmd_import_trtexec",
    "cmd_sweep",
    "cmd_cluster",
    "cmd_runs",
    "cmd_show",
    "cmd_delete",
    "cmd_gc",
    "cmd_lab",
    "cmd_report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Make a trained ONNX model run faster: precision variants, pruning, timing and drift.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"workbench.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with json_only_stdout(bool(getattr(args, "json", False))):
            status = int(args.func(args) or 0)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        return reader_went_away()
    except KeyboardInterrupt:
        print("error: interrupted; nothing partial was kept.", file=sys.stderr)
        return 130
    except (WorkbenchError, Cancelled) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the last line of defence: one line, traceback on request
        if args.debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {library_message(exc)} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


def reader_went_away() -> int:
    """`workbench ... | head` closes the pipe early: stop quietly, as Unix tools do, with SIGPIPE's status."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's own flush at exit does not fail again
    os.close(devnull)
    return 141


if __name__ == "__main__":
    sys.exit(main())
