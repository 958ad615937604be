"""Judge a variant against FP32, batch by batch: raw output drift, the task metric and the budget's verdict.

``TaskChoice`` is what the user picked (task, own metric, budget); ``Judge`` streams one evaluation
over it and returns the drift dict that runs store, with the task's ``TaskScore`` under ``"task"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workbench.errors import WorkbenchError
from workbench.tasks.base import BROKEN_COSINE, Meter, Outputs, TaskScore
from workbench.tasks.classification import ClassificationMeter
from workbench.tasks.custom import CustomMeter, MetricFn, load_metric, metric_name
from workbench.tasks.guess import guess_task
from workbench.tasks.raw import RawMeter
from workbench.tasks.registry import ACCURACY_POINTS, TASKS, check_budget, get_task


@dataclass(frozen=True)
class TaskChoice:
    """The task to judge by (None: guess it), a user's metric (which then decides) and the budget."""

    task: str | None = None
    metric: str | MetricFn | None = None
    budget: float | None = None

    def __post_init__(self) -> None:
        if self.task is not None:
            get_task(self.task)
        if self.metric is not None:
            load_metric(self.metric)
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
        return figures["reference_accuracy"] - points / 100.0, f"accuracy within {points:g} points of FP32"
    spec = TASKS[task]
    value = spec.budget if budget is None else budget
    return value, spec.rule.format(b=value)


def verdict(task: str, figures: dict, budget: float | None, raw: dict, guessed: bool,
            custom: str | None = None) -> TaskScore:
    """The score with its threshold, whether it meets it, and whether the outputs are plainly broken."""
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
    return TaskScore(task=task, metric=custom or figures["metric"], value=value, threshold=float(threshold),
                     met=broken is None and value >= threshold - 1e-12, rule=rule, broken=broken,
                     guessed=guessed, details=details)


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
        score = verdict(self.task, self.meter.figures(), self.choice.budget, per_output,
                        guessed=self.choice.task is None and self.choice.metric is None,
                        custom=self.choice.metric_name)
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


def rejudge(drift: dict, budget: float | None) -> TaskScore | None:
    """The stored score judged against another budget (a cached run asked with a new budget)."""
    score = task_score(drift)
    if score is None or budget is None or score.task not in TASKS or ":" in score.metric:
        return score
    figures = {**score.details, "value": score.value, "metric": score.metric}
    return verdict(score.task, figures, budget, drift.get("per_output", {}), score.guessed)
