"""Options and output helpers shared by the sub-commands, so every command reads the same."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.cli import json_stdout
from workbench.progress import ProgressEvent
from workbench.tasks import TASKS


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """Where runs are kept and how results are printed: shared by every command that builds."""
    parser.add_argument("--workspace", help="workspace folder (default: $WORKBENCH_WORKSPACE or ./workbench-workspace)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def add_task_options(parser: argparse.ArgumentParser) -> None:
    """How a variant is judged: the task (guessed from the outputs when not given), a metric, the budget."""
    parser.add_argument("--task", choices=list(TASKS),
                        help="judge variants as this task (default: guessed from the model's outputs)")
    parser.add_argument("--metric", metavar="MODULE:FUNCTION",
                        help="your own metric fn(reference_outputs, variant_outputs, labels) -> float "
                        "(higher is better)")
    parser.add_argument("--budget", type=float, help="lowest passing metric value (default: the task's; "
                        + "; ".join(f"{t.name} {t.rule.format(b=t.budget)}" for t in TASKS.values())
                        + "; with labels, classification allows 1 point of accuracy lost)")


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
