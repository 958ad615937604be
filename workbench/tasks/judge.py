"""Judge a variant against FP32, batch by batch: raw output drift, the task metric and the budget's verdict.

``TaskChoice`` is what the user picked (task, own metric, budget); ``Judge`` streams one evaluation
over it and returns the drift dict that runs store, with the task's ``TaskScore`` under ``"task"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workbench.errors import WorkbenchError
from workbench.tasks.base import BROKEN_COSINE, Meter, Outputs, TaskScore
from workbench.tasks.classification import ClassificationMeter
from workbench.tasks.confidence import CONFIDENCE, MEETS, MISSES, interval, samples_needed, state
from workbench.tasks.custom import CustomMeter, MetricFn, check_metric_form, load_metric, metric_name
from workbench.tasks.evidence import Evidence
from workbench.tasks.guess import guess_task
from workbench.tasks.raw import RawMeter
from workbench.tasks.registry import ACCURACY_POINTS, TASKS, check_budget, get_task


@dataclass(frozen=True)
class TaskChoice:
    """The task to judge by (None: guess it), a user's metric (which then decides), the budget, and the level of
    the verdict's interval."""

    task: str | None = None
    metric: str | MetricFn | None = None
    budget: float | None = None
    confidence: float = CONFIDENCE

    def __post_init__(self) -> None:
        if self.task is not None:
            get_task(self.task)
        if self.metric is not None:
            check_metric_form(self.metric)  # imported only when a build starts (load_metric)
            if self.budget is None:
                raise WorkbenchError("A custom metric needs a budget to judge variants by.",
                                     "Pass --budget (the lowest passing value of your metric).")
        else:
            check_budget(self.task, self.budget)

    @property
    def metric_name(self) -> str | None:
        return metric_name(self.metric) if self.metric is not None else None


def threshold_for(task: str, figures: dict, budget: float | None) -> tuple[float, str]:
    """The lowest passing value and the rule in words; accuracy with labels is points below FP32."""
    if task == "classification" and figures.get("metric") == "accuracy":
        points = ACCURACY_POINTS if budget is None else budget
        unit = "point" if points == 1 else "points"
        return figures["reference_accuracy"] - points / 100.0, f"accuracy within {points:g} {unit} of FP32"
    spec = TASKS[task]
    value = spec.budget if budget is None else budget
    return value, spec.rule.format(b=value)


def verdict(task: str, figures: dict, budget: float | None, raw: dict, guessed: bool,
            custom: str | None = None, evidence: Evidence | None = None,
            confidence: float = CONFIDENCE) -> TaskScore:
    """The score with its threshold, whether it meets it, whether the outputs are plainly broken, and, from
    the per-sample ``evidence``, its interval and whether the data can show the verdict at all."""
    if custom is not None:
        threshold, rule = float(budget), f"{custom} >= {budget:g}"
    else:
        threshold, rule = threshold_for(task, figures, budget)
    value = float(figures["value"]) if figures.get("value") is not None else float("nan")
    worst_cos = min((r["cosine_similarity"] for r in raw.values()), default=1.0)
    broken = None
    if any(r.get("non_finite") for r in raw.values()):
        broken = "the variant's outputs contain NaN or Inf"
    elif math.isnan(value):
        broken = "the task metric is NaN"
    elif worst_cos < BROKEN_COSINE:
        broken = f"output cosine {worst_cos:.3f} < {BROKEN_COSINE}"
    elif threshold > 0 and value < 0.5 * threshold:
        broken = f"{figures.get('metric', 'metric')} {value:.3f} is far below the budget {threshold:.3f}"
    details = {k: v for k, v in figures.items() if k not in ("value", "metric")}
    score = TaskScore(task=task, metric=custom or figures["metric"], value=value, threshold=float(threshold),
                      met=broken is None and value >= threshold - 1e-12, rule=rule, broken=broken,
                      guessed=guessed, details=details)
    return with_interval(score, evidence, confidence)


def with_interval(score: TaskScore, evidence: Evidence | None, confidence: float = CONFIDENCE) -> TaskScore:
    """``score`` with its interval, units, three-state verdict and the units that would settle it.

    A user's own metric has no per-sample evidence: its verdict is the point estimate's alone.
    """
    if evidence is None or len(evidence) == 0:
        score.state = MISSES if score.broken or not score.met else MEETS
        return score
    low, high = interval(evidence, confidence)
    score.details["per_sample"] = evidence.to_dict()
    score.interval = [low, high]
    score.samples, score.unit, score.confidence = evidence.units, evidence.unit, confidence
    score.state = state(low, high, score.threshold, broken=score.broken is not None)
    score.samples_needed = samples_needed(evidence, low, high, score.threshold, confidence)
    return score


def score_on(score: TaskScore, indices, drift: dict | None = None, confidence: float | None = None) -> TaskScore:
    """The same verdict computed on some of the samples only (a confirmation split, the stable samples).

    The value comes from the stored per-sample evidence, so both parts come from one measurement; with
    labels, FP32's own accuracy on those samples sets the threshold.
    """
    return joined([(score, indices)], drift, confidence)


def joined(parts: Sequence[tuple[TaskScore, object]], drift: dict | None = None,
           confidence: float | None = None) -> TaskScore:
    """One verdict on samples of several measurements of the same variant (the search's share, then the extra
    samples spent on it): each part's chosen samples, in order, judged as one set at ``confidence`` (default:
    the first part's)."""
    pieces, failed, offset = [], [], 0
    for score, indices in parts:
        stored = score.details.get("per_sample")
        if stored is None:
            raise WorkbenchError("This run stores no per-sample figures, so it cannot be judged on part of its "
                                 "data.", "Rebuild it (--force) with this version of the workbench.")
        kept = np.asarray(indices, dtype=np.int64)
        pieces.append(Evidence.from_dict(stored).subset(kept))
        if "reference_failed" in score.details:
            hit = np.isin(kept, np.asarray(score.details["reference_failed"], dtype=np.int64))
            failed += [offset + int(i) for i in np.flatnonzero(hit)]
        offset += len(kept)
    evidence = Evidence.joined(pieces)
    first = parts[0][0]
    figures: dict = {"value": evidence.value, "metric": first.metric,
                     "part_of": sum(len(Evidence.from_dict(s.details["per_sample"])) for s, _ in parts)}
    if "reference_failed" in first.details:
        figures["reference_accuracy"] = 1.0 - len(failed) / offset if offset else float("nan")
        figures["reference_failed"] = failed
    custom = first.metric if ":" in first.metric else None
    raw = (drift or {}).get("per_output", {})
    return verdict(first.task, figures, _budget_of(first), raw, first.guessed, custom=custom, evidence=evidence,
                   confidence=first.confidence if confidence is None else confidence)


def metric_dict(score: TaskScore) -> dict:
    """The verdict as JSON faces give it: value, budget, interval, units counted, state, units needed."""
    return {"name": score.metric, "value": score.value, "budget": score.threshold, "met": score.met,
            "rule": score.rule, "broken": score.broken, "interval": score.interval, "samples": score.samples,
            "unit": score.unit, "verdict": score.state, "samples_needed": score.samples_needed,
            "confidence": score.confidence}


def _budget_of(score: TaskScore) -> float:
    """The budget the user gave, recovered from the score (accuracy's budget is points below FP32)."""
    if score.task == "classification" and score.metric == "accuracy":
        return (score.details["reference_accuracy"] - score.threshold) * 100.0
    return score.threshold


class Judge:
    """Streams batches into the raw meter, the classifier figures older tables read, and the task meter."""

    def __init__(self, choice: TaskChoice | None = None) -> None:
        self.choice = choice or TaskChoice()
        self.raw = RawMeter()
        self.legacy: ClassificationMeter | None = None
        self.meter: Meter | None = None
        self.task: str | None = self.choice.task
        self.reason = "set by the user"
        self.samples = 0

    def _start(self, reference: Outputs, inputs: Outputs) -> None:
        first = next(iter(reference.values()))
        if first.ndim == 2 and first.shape[1] > 1:
            self.legacy = ClassificationMeter()
        if self.task is None:
            guessed, self.reason = guess_task(reference, inputs)
            self.task = guessed or "raw"
        if self.choice.metric is not None:
            self.meter = CustomMeter(load_metric(self.choice.metric), self.choice.metric_name)
        else:
            self.meter = TASKS[self.task].meter()

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        if self.meter is None:
            self._start(reference, inputs)
        self.samples += len(next(iter(inputs.values())))
        self.raw.update(reference, variant, labels, inputs)
        if self.legacy is not None:
            self.legacy.update(reference, variant, labels if labels is not None and labels.ndim == 1 else None, inputs)
        try:
            self.meter.update(reference, variant, labels, inputs)
        except ValueError as exc:
            raise WorkbenchError(f"The outputs do not fit the '{self.task}' task: {exc}.",
                                 "Choose the task that matches the model (--task), or 'raw'.") from exc

    def result(self) -> dict:
        """The drift dict a run stores: per-output errors, the first output's at top level, and ``task``."""
        per_output = self.raw.per_output()
        first = next(iter(per_output.values()), {})
        drift: dict = {"per_output": per_output, **first}
        legacy = self.legacy.figures() if self.legacy is not None else {}
        drift.update({key: legacy.get(key) for key in ("top1_agreement", "accuracy", "reference_accuracy")})
        drift["samples"] = self.samples
        evidence = self.meter.evidence() if hasattr(self.meter, "evidence") else None
        score = verdict(self.task, self.meter.figures(), self.choice.budget, per_output,
                        guessed=self.choice.task is None and self.choice.metric is None,
                        custom=self.choice.metric_name, evidence=evidence, confidence=self.choice.confidence)
        score.details["task_reason"] = self.reason
        drift["task"] = score.to_dict()
        return drift


def judge_batches(batches, choice: TaskChoice | None = None) -> dict:
    """Judge an iterable of ``(reference, variant, labels, inputs)`` batches."""
    judge = Judge(choice)
    for reference, variant, labels, inputs in batches:
        judge.update(reference, variant, labels, inputs)
    return judge.result()


def task_score(drift: dict) -> TaskScore | None:
    """The stored score of a run's drift dict, or None for runs measured before task metrics existed."""
    data = (drift or {}).get("task")
    return TaskScore.from_dict(data) if data else None


def rejudge(drift: dict, budget: float | None, confidence: float | None = None) -> TaskScore | None:
    """The stored score judged against another budget (a cached run asked with a new budget), at ``confidence``
    (default: the one it was judged at)."""
    score = task_score(drift)
    if score is None or (budget is None and confidence is None) or score.task not in TASKS or ":" in score.metric:
        return score
    budget = _budget_of(score) if budget is None else budget
    figures = {k: v for k, v in score.details.items() if k != "per_sample"}
    figures.update(value=score.value, metric=score.metric)
    stored = score.details.get("per_sample")
    evidence = Evidence.from_dict(stored) if stored else None
    return verdict(score.task, figures, budget, drift.get("per_output", {}), score.guessed, evidence=evidence,
                   confidence=score.confidence if confidence is None else confidence)
