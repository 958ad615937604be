"""Which task a model does, guessed from its first batch of outputs, and only where that is unambiguous.

Shapes alone confuse a YOLO head ``[N, 84, 8400]`` with a CTC recogniser ``[N, 40, 6625]``; the
values do not: per-step CTC scores are a distribution over classes (or its log), a YOLO head's first
four rows are pixel coordinates.
"""

from __future__ import annotations

import numpy as np

from workbench.tasks.base import Outputs

DETECTION_NAMES = ("box", "bbox")


def _is_distribution(array: np.ndarray, axis: int) -> bool:
    sample = array[:2].astype(np.float64)
    sums = sample.sum(axis=axis)
    if np.allclose(sums, 1.0, atol=1e-2) and sample.min() >= -1e-6:
        return True
    return bool(sample.max() <= 1e-6 and np.allclose(np.exp(sample).sum(axis=axis), 1.0, atol=1e-2))


def guess_task(outputs: Outputs, inputs: Outputs) -> tuple[str | None, str]:
    """The task name (or None) and the reason, shown beside the metric so a wrong guess is easy to spot."""
    names = [name.lower() for name in outputs]
    arrays = list(outputs.values())
    token_inputs = any(np.issubdtype(a.dtype, np.integer) and a.ndim == 2 for a in inputs.values())
    if token_inputs and any(a.ndim in (2, 3) for a in arrays):
        return "embedding", "integer token inputs and [N, T, H] or [N, H] outputs"
    if any(any(key in name for key in DETECTION_NAMES) for name in names) and any(
            a.ndim == 3 and a.shape[2] == 4 for a in arrays):
        return "detection", "a boxes output [N, K, 4]"
    three = [a for a in arrays if a.ndim == 3]
    if len(arrays) == 1 and three:
        array = three[0]
        if _is_distribution(array, 2) and array.shape[2] > array.shape[1] // 4:
            return "sequence", f"per-step class distributions {list(array.shape)} (CTC)"
        small, large = sorted(array.shape[1:])
        heads = array if array.shape[1] == small else np.swapaxes(array, 1, 2)
        if small >= 5 and large >= 10 * small and np.abs(heads[:, :4]).max() > 2:
            return "detection", f"YOLO-style head {list(array.shape)} (boxes, then class scores)"
    if len(arrays) == 1 and arrays[0].ndim == 4 and min(arrays[0].shape[2:]) >= 8:
        return "dense", f"one map output {list(arrays[0].shape)}"
    if len(arrays) == 1 and arrays[0].ndim == 2 and arrays[0].shape[1] > 1:
        return "classification", f"one [N, {arrays[0].shape[1]}] output"
    return None, "the outputs fit no task unambiguously; set the task to judge by it"
