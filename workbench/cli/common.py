"""Options and output helpers shared by the sub-commands, so every command reads the same."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from workbench.cli import json_stdout
from workbench.progress import ProgressCallback, ProgressEvent


def add_workspace_option(parser: argparse.ArgumentParser) -> None:
    """Where runs are kept: the one declaration every command that reads or writes runs shares."""
    parser.add_argument("--workspace", help="workspace folder (default: $WORKBENCH_WORKSPACE or ./workbench-workspace)")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where runs are kept and how results are printed: shared by every command that builds."""
    add_workspace_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


#: Without a terminal, a step is logged once it has run this long (shorter ones stay quiet, so a command that
#: fails at once still prints its one error line), then again every ``LOG_EVERY_S`` while it lasts.
LOG_AFTER_S = 2.0
LOG_EVERY_S = 10.0
#: Steps that mark a unit of work done (a search's next trial, the end): logged as they come, whatever their length.
LOG_AT_ONCE = ("tune", "done")


class LineLog:
    """Progress for a log (CI, a pipe): a line for each step that lasts over ``LOG_AFTER_S``, never a redraw."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.step: str | None = None
        self.began = self.logged = 0.0
        self.pending: ProgressEvent | None = None

    def __call__(self, event: ProgressEvent) -> None:
        now = self.clock()
        if event.step != self.step:
            if self.pending is not None and now - self.began >= LOG_AFTER_S and not self.logged:
                self._write(self.pending, f" ({now - self.began:.0f} s)")  # a long step that sent no later event
            self.step, self.began, self.logged = event.step, now, 0.0
        self.pending = event
        due = now - self.began >= LOG_AFTER_S and (not self.logged or now - self.logged >= LOG_EVERY_S)
        if due or event.step in LOG_AT_ONCE:
            self._write(event, "")
            self.logged = now

    def _write(self, event: ProgressEvent, suffix: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"[{event.fraction * 100:5.1f}%] {event.step}: {event.message}{suffix}\n")
        stream.flush()


def stderr_progress(tty: bool) -> ProgressCallback:
    """A progress callback on stderr: on a terminal one line redrawn in place; otherwise a ``LineLog``."""
    if not tty:
        return LineLog()
    last = {"step": None}

    def redraw(event: ProgressEvent) -> None:
        line = f"\r[{event.fraction * 100:5.1f}%] {event.step}: {event.message}"[:100]
        sys.stderr.write(line.ljust(100))
        if event.step == "done" or event.step != last["step"]:
            sys.stderr.flush()
        last["step"] = event.step
        if event.step == "done":
            sys.stderr.write("\n")

    return redraw


def print_json(data: Any) -> None:
    stream = json_stdout.json_stream or sys.stdout
    json.dump(data, stream, indent=1, default=_jsonable)
    stream.write("\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
