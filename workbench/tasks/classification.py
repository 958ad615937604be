"""Classification: does the variant pick the same class as FP32 (top-1, top-5), and with labels, how accurate is it."""

from __future__ import annotations

import numpy as np

from workbench.tasks.base import Outputs


def logits_output(outputs: Outputs) -> np.ndarray:
    """The class scores: the first 2-D output with more than one column."""
    for array in outputs.values():
        if array.ndim == 2 and array.shape[1] > 1:
            return array
    raise ValueError("no [batch, classes] output")


class ClassificationMeter:
    def __init__(self) -> None:
        self.samples = self.top1 = self.top5 = 0
        self.correct = self.reference_correct = 0
        self.labelled = False

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        ref, var = logits_output(reference), logits_output(variant)
        ref_top1, var_top1 = ref.argmax(axis=1), var.argmax(axis=1)
        k = min(5, ref.shape[1])
        var_top5 = np.argsort(-var, axis=1)[:, :k]
        self.samples += len(ref)
        self.top1 += int((ref_top1 == var_top1).sum())
        self.top5 += int((var_top5 == ref_top1[:, None]).any(axis=1).sum())
        if labels is not None and labels.ndim == 1:
            self.labelled = True
            self.correct += int((var_top1 == labels).sum())
            self.reference_correct += int((ref_top1 == labels).sum())

    def figures(self) -> dict:
        n = max(self.samples, 1)
        figures = {"top1_agreement": self.top1 / n, "top5_agreement": self.top5 / n, "samples": self.samples,
                   "accuracy": None, "reference_accuracy": None}
        if self.labelled:
            figures.update(accuracy=self.correct / n, reference_accuracy=self.reference_correct / n)
        figures["value"] = figures["accuracy"] if self.labelled else figures["top1_agreement"]
        figures["metric"] = "accuracy" if self.labelled else "top1_agreement"
        return figures
