"""A task verdict in words: the one formatter every face (CLI, tables, report, notes) prints it through.

A value is never shown without its interval and the units it counts, and a verdict the data
cannot settle says how many units would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.tasks.confidence import CANNOT_TELL, MEETS, MISSES

if TYPE_CHECKING:
    from workbench.tasks.base import TaskScore

_WORDS = {MEETS: "meets the budget", MISSES: "MISSES the budget", CANNOT_TELL: "CANNOT TELL with this data"}
#: The short flag of tables.
FLAGS = {MEETS: "ok", MISSES: "MISSES", CANNOT_TELL: "cannot tell"}


def interval_cell(interval: list[float] | None, samples: int | None, unit: str = "samples") -> str:
    """'[0.9125, 0.9931] on 80 samples', or '' for a verdict without an interval (a user's own metric)."""
    text = "" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]"
    if samples is not None:
        text += f" on {samples} {unit}"
    return text.strip()


def interval_text(score: TaskScore) -> str:
    """'0.9750 [0.9125, 0.9931] on 80 samples': the value, its interval and what it counts."""
    cell = interval_cell(score.interval, score.samples, score.unit)
    text = f"{score.value:.4f} {cell}" if cell else f"{score.value:.4f}"
    left_out = score.details.get("left_out")
    return f"{text} ({left_out})" if left_out else text


def metric_cell(metric: dict) -> str:
    """A JSON verdict (``tasks.judge.metric_dict``: tune's and sweep's) as '0.9480 [0.8838, 0.9776] on 96 samples
    cannot tell': what benchmark tables and notebooks print from a search's JSON."""
    cell = interval_cell(metric.get("interval"), metric.get("samples"), metric.get("unit", "samples"))
    flag = "BROKEN" if metric.get("broken") else FLAGS.get(metric.get("verdict"), "ok" if metric.get("met") else
                                                             "MISSES")
    return " ".join(part for part in (f"{metric['value']:.4f}", cell, flag) if part)


def state_flag(score: TaskScore) -> str:
    """'ok', 'MISSES', 'cannot tell' or 'BROKEN': one cell of a table."""
    if score.broken:
        return "BROKEN"
    if score.state is None:  # measured before verdicts had intervals
        return "ok" if score.met else "MISSES"
    return FLAGS[score.state]


def needed_text(score: TaskScore) -> str | None:
    """'to show top-1 agreement with FP32 >= 0.99 with 95% confidence, about 381 samples are needed with none
    changed; you gave 80', for a verdict the data cannot settle."""
    if score.state != CANNOT_TELL or score.broken:
        return None
    claim = score.rule if score.value >= score.threshold else score.rule.replace(">=", "<")
    head = f"to show {claim} with {score.confidence:.0%} confidence"
    if score.samples_needed is None:
        return f"{head}, no number of {score.unit} is enough: the value sits on the budget"
    share = 1 - score.value
    if score.details.get("per_sample", {}).get("kind") == "mean":
        at = "at the same spread"
    elif score.unit == "detections":
        at = "with none lost" if share == 0 else f"if {share:.1%} keep being lost"
    else:
        at = "with none changed" if share == 0 else f"if {share:.1%} keep changing"
    return f"{head}, about {score.samples_needed} {score.unit} are needed {at}; you gave {score.samples}"


def verdict_line(score: TaskScore) -> str:
    """One line for the CLI and notes: value, interval, budget and the verdict in words."""
    text = f"{score.metric} {interval_text(score)} (budget {score.rule})"
    if score.broken:
        return f"{text}: BROKEN ({score.broken})"
    if score.state is None:
        return f"{text}: {'meets the budget' if score.met else 'MISSES the budget'}"
    line = f"{text}: {_WORDS[score.state]}"
    needed = needed_text(score)
    return f"{line} ({needed})" if needed else line
