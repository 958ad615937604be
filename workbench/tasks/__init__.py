"""Task metrics: a variant is judged the way its task is judged (classes agreed, detections kept,
embedding cosine over real tokens, map IoU, identical decodes), never only by an output cosine."""

from workbench.tasks.base import TaskScore
from workbench.tasks.judge import Judge, TaskChoice, judge_batches, rejudge, task_score
from workbench.tasks.registry import TASKS, get_task

__all__ = ["TASKS", "Judge", "TaskChoice", "TaskScore", "get_task", "judge_batches", "rejudge", "task_score"]
