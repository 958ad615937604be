"""The tasks, their main metric and their default budget: the one place these numbers live."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from workbench.errors import WorkbenchError
from workbench.tasks.base import Meter
from workbench.tasks.classification import ClassificationMeter
from workbench.tasks.dense import DenseMeter
from workbench.tasks.detection import DetectionMeter
from workbench.tasks.embedding import EmbeddingMeter
from workbench.tasks.raw import RawMeter
from workbench.tasks.sequence import SequenceMeter


@dataclass(frozen=True)
class Task:
    """``budget`` is the lowest passing value of ``metric`` (higher is better)."""

    name: str
    metric: str
    budget: float
    rule: str
    meter: Callable[[], Meter]


TASKS: dict[str, Task] = {task.name: task for task in (
    Task("classification", "top1_agreement", 0.99, "top-1 agreement with FP32 >= {b:g}", ClassificationMeter),
    Task("detection", "detections_kept", 0.95, "share of FP32 detections kept >= {b:g}", DetectionMeter),
    Task("embedding", "sentence_cosine", 0.99, "sentence-embedding cosine >= {b:g}", EmbeddingMeter),
    Task("dense", "iou", 0.95, "IoU of thresholded maps >= {b:g}", DenseMeter),
    Task("sequence", "identical_decodes", 0.95, "share of identical greedy decodes >= {b:g}", SequenceMeter),
    Task("raw", "cosine", 0.999, "worst output's cosine >= {b:g}", RawMeter),
)}

#: With labels, classification is judged on accuracy: at most this many points below FP32's.
ACCURACY_POINTS = 1.0


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise WorkbenchError(f"Unknown task '{name}'.", f"Choose one of: {', '.join(TASKS)}.")
    return TASKS[name]


def check_budget(task: str | None, budget: float | None) -> None:
    """A budget outside what its metric can reach is a typo, not a wish."""
    if budget is None:
        return
    if budget != budget or budget < 0:
        raise WorkbenchError(f"Budget {budget} is not a usable number.", "Give a value >= 0.")
    if task not in (None, "classification") and budget > 1:
        raise WorkbenchError(f"Budget {budget:g} cannot be met: the {task} metric is at most 1.",
                             f"Give a fraction, e.g. {get_task(task).budget:g}.")
