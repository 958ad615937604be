"""Trials the search may run together: in turn on one machine, side by side over a cluster's nodes.

The policy hands a list of independent jobs (each one trial, or one short chain of trials) and, where
it stops at the first good answer, what "good" means. In turn, the jobs after that answer are never
run, so a search on one machine tries exactly what it always did; side by side, every job is started
at once (as many at a time as there are nodes) and the answers are read in the same order, so the
policy reaches the same conclusion from whatever finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def in_turn(jobs: Sequence[Callable[[], T]], enough: Callable[[T], bool] | None = None) -> list[T]:
    """Each job in order, stopping after the first answer that is ``enough``."""
    answers = []
    for job in jobs:
        answers.append(job())
        if enough is not None and enough(answers[-1]):
            break
    return answers


def side_by_side(jobs: Sequence[Callable[[], T]], enough: Callable[[T], bool] | None, width: int) -> list[T]:
    """Every job started at once, ``width`` at a time; the answers in order up to the first ``enough`` one.
    Jobs not yet started then are dropped; those already running finish (their trials are real runs)."""
    answers = []
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="trial") as pool:
        futures = [pool.submit(job) for job in jobs]
        try:
            for future in futures:
                answers.append(future.result())
                if enough is not None and enough(answers[-1]):
                    break
        finally:
            for future in futures:
                future.cancel()
    return answers
