"""Which run to recommend: one rule for ``workbench tune`` and ``workbench sweep``, in the layer that judges runs.

A run qualifies when it meets its task's budget and runs **measurably faster** than FP32. Both halves
of "measurably faster" use one ratio, the run's comparable speed-up (against FP32 on the device's
default engine, timed in the same rounds): the noise test asks whether the low end of that ratio's 95%
interval reaches ``WORTHWHILE`` (1.02x, ``Run.measurably_faster``), the ranking sorts by that ratio. So FP32 on
a faster engine, the same file unchanged, qualifies like any variant; a variant slower than FP32, or within the
noise of it, never does, and "keep FP32" is the answer when nothing qualifies.

This module imports no build stack, so the runs table and the report judge without it.
"""

from __future__ import annotations

from collections.abc import Sequence

from workbench.runs.run import Run
from workbench.tasks import task_score


def accuracy_loss(drift: dict) -> tuple[float | None, str]:
    """Points of accuracy lost against the FP32 reference, and on what basis.

    With labels: reference accuracy minus variant accuracy. Without: the share of samples whose
    top-1 class changed, which bounds the accuracy change and needs no labels.
    """
    accuracy, reference = drift.get("accuracy"), drift.get("reference_accuracy")
    score = task_score(drift)
    if score is not None and score.task != "classification" and ":" not in score.metric:
        return (1.0 - score.value) * 100.0, score.metric.replace("_", " ")
    if accuracy is not None and reference is not None:
        return (reference - accuracy) * 100.0, "accuracy"
    agreement = drift.get("top1_agreement")
    if agreement is not None:
        return (1.0 - agreement) * 100.0, "top-1 agreement"
    return None, "none"


def measurably_faster(run: Run) -> bool:
    """``Run.measurably_faster``: the low end of the comparable ratio's 95% interval reaches ``WORTHWHILE``."""
    return run.measurably_faster


def is_the_reference(run: Run) -> bool:
    """Unpruned FP32 with nothing kept on the baseline's own engine: the reference itself, whose speed-up is 1
    plus timing noise. FP32 on another engine is a real choice (another engine for the same file)."""
    spec = run.spec
    return (spec.precision == "fp32" and not (spec.prune_method and spec.prune_ratio) and not spec.exclude_nodes
            and not run.cross_engine)


def qualifies(run: Run, judged: bool = False) -> bool:
    """Meets its task's budget (its stored verdict; ``judged``: the caller judged it on its own data) and runs
    measurably faster than FP32."""
    score = task_score(run.drift)
    meets = judged or bool(score is not None and score.met)
    return meets and not is_the_reference(run) and measurably_faster(run)


def pick(runs: Sequence[Run]) -> Run | None:
    """The fastest qualifying run by the comparable speed-up; None means: keep FP32."""
    qualified = [run for run in runs if qualifies(run)]
    return max(qualified, key=lambda run: run.comparable_speedup) if qualified else None


def keep_fp32_reason(runs: Sequence[Run]) -> str:
    """Why nothing qualifies, in the words both faces print."""
    within = [run for run in runs if (score := task_score(run.drift)) is not None and score.met
              and not is_the_reference(run)]
    if within:
        return "keep FP32: what meets the budget runs no measurably faster than FP32 here"
    return "keep FP32: no variant meets the budget"
