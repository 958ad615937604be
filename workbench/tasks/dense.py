"""Dense maps (segmentation, text-probability maps): IoU of the thresholded maps, per image and overall.

One-channel maps are thresholded at 0.5 when they look like probabilities (all in [0, 1]) and at 0
otherwise (logits); several channels are a class per pixel (argmax), scored as the mean IoU of the
classes present.
"""

from __future__ import annotations

import numpy as np

from workbench.tasks.base import Outputs
from workbench.tasks.evidence import Evidence


def dense_output(outputs: Outputs) -> np.ndarray:
    array = next((a for a in outputs.values() if a.ndim == 4), None)
    if array is None:
        array = next((a for a in outputs.values() if a.ndim == 3), None)
    if array is None:
        raise ValueError("no [N, C, H, W] or [N, H, W] output")
    return array if array.ndim == 4 else array[:, None]


def masks(array: np.ndarray, threshold: float) -> np.ndarray:
    """Per-pixel labels ``[N, H, W]``: class index, or 0/1 for a single-channel map."""
    if array.shape[1] == 1:
        return (array[:, 0] > threshold).astype(np.int64)
    return array.argmax(axis=1)


class DenseMeter:
    def __init__(self) -> None:
        self.threshold: float | None = None
        self.image_iou: list[float] = []
        self.inter = 0
        self.union = 0

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        ref, var = dense_output(reference), dense_output(variant)
        if self.threshold is None:
            self.threshold = 0.5 if ref.min() >= 0 and ref.max() <= 1 else 0.0
        ref_mask, var_mask = masks(ref, self.threshold), masks(var, self.threshold)
        classes = [1] if ref.shape[1] == 1 else range(ref.shape[1])
        for r, v in zip(ref_mask, var_mask, strict=True):
            scores = []
            for cls in classes:
                a, b = r == cls, v == cls
                inter, union = int((a & b).sum()), int((a | b).sum())
                self.inter += inter
                self.union += union
                if union:
                    scores.append(inter / union)
            self.image_iou.append(float(np.mean(scores)) if scores else 1.0)

    def evidence(self) -> Evidence:
        return Evidence.mean(np.asarray(self.image_iou or [1.0]), unit="images")

    def figures(self) -> dict:
        images = np.asarray(self.image_iou or [1.0])
        return {"metric": "iou", "value": float(images.mean()), "iou": float(images.mean()),
                "min_image_iou": float(images.min()),
                "overall_iou": self.inter / self.union if self.union else 1.0, "threshold": self.threshold}
