"""Options and output helpers shared by the sub-commands, so every command reads the same."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.cli import json_stdout
from workbench.progress import ProgressEvent


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where runs are kept and how results are printed: shared by every command that builds."""
    parser.add_argument("--workspace", help="workspace folder (default: $WORKBENCH_WORKSPACE or ./workbench-workspace)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def stderr_progress(enabled: bool):
    """A progress callback that redraws one stderr line; silent when stderr is not a terminal."""
    if not enabled:
        return None
    last = {"step": None}

    def report(event: ProgressEvent) -> None:
        line = f"\r[{event.fraction * 100:5.1f}%] {event.step}: {event.message}"[:100]
        sys.stderr.write(line.ljust(100))
        if event.step == "done" or event.step != last["step"]:
            sys.stderr.flush()
        last["step"] = event.step
        if event.step == "done":
            sys.stderr.write("\n")

    return report


def print_json(data: Any) -> None:
    stream = json_stdout.json_stream or sys.stdout
    json.dump(data, stream, indent=1, default=_jsonable)
    stream.write("\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
