"""Classification: does the variant pick the same class as FP32 (top-1, top-5), and with labels, how accurate is it."""

from __future__ import annotations

import numpy as np

from workbench.tasks.base import Outputs
from workbench.tasks.evidence import Evidence


def logits_output(outputs: Outputs) -> np.ndarray:
    """The class scores: the first 2-D output with more than one column."""
    for array in outputs.values():
        if array.ndim == 2 and array.shape[1] > 1:
            return array
    raise ValueError("no [batch, classes] output")


#: How many margins of changed samples a run keeps (the smallest first).
MARGINS_KEPT = 10


class ClassificationMeter:
    def __init__(self) -> None:
        self.samples = self.top1 = self.top5 = 0
        self.correct = self.reference_correct = 0
        self.labelled = False
        # FP32's lead of its top class over the runner-up, per sample: a class that changes where FP32
        # itself barely decides is a coin flip any reduced precision may lose, not a broken layer.
        self.margins: list[np.ndarray] = []
        self.changed: list[np.ndarray] = []
        self.correct_each: list[np.ndarray] = []
        self.reference_correct_each: list[np.ndarray] = []

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        ref, var = logits_output(reference), logits_output(variant)
        ref_top1, var_top1 = ref.argmax(axis=1), var.argmax(axis=1)
        k = min(5, ref.shape[1])
        var_top5 = np.argsort(-var, axis=1)[:, :k]
        self.samples += len(ref)
        self.top1 += int((ref_top1 == var_top1).sum())
        self.top5 += int((var_top5 == ref_top1[:, None]).any(axis=1).sum())
        top2 = np.partition(ref, -2, axis=1)[:, -2:] if ref.shape[1] > 1 else np.zeros((len(ref), 2))
        self.margins.append((top2[:, 1] - top2[:, 0]).astype(np.float64))
        self.changed.append(ref_top1 != var_top1)
        if labels is not None and labels.ndim == 1:
            self.labelled = True
            self.correct += int((var_top1 == labels).sum())
            self.reference_correct += int((ref_top1 == labels).sum())
            self.correct_each.append(var_top1 == labels)
            self.reference_correct_each.append(ref_top1 == labels)

    def figures(self) -> dict:
        n = max(self.samples, 1)
        figures = {"top1_agreement": self.top1 / n, "top5_agreement": self.top5 / n, "samples": self.samples,
                   "accuracy": None, "reference_accuracy": None}
        if self.labelled:
            figures.update(accuracy=self.correct / n, reference_accuracy=self.reference_correct / n)
        figures.update(self.margin_figures())
        if self.labelled:  # FP32's own misses, so accuracy on part of the data has its own FP32 to compare with
            figures["reference_failed"] = [int(i) for i in np.flatnonzero(~np.concatenate(self.reference_correct_each))]
        figures["value"] = figures["accuracy"] if self.labelled else figures["top1_agreement"]
        figures["metric"] = "accuracy" if self.labelled else "top1_agreement"
        return figures

    def evidence(self) -> Evidence:
        """Per sample: the variant's class correct (with labels) or the same as FP32's."""
        if self.labelled:
            return Evidence.share(np.concatenate(self.correct_each))
        return Evidence.share(~np.concatenate(self.changed) if self.changed else np.zeros(0))

    def margin_figures(self) -> dict:
        """FP32's top-2 logit margins of the samples whose class changed, against all samples' margins."""
        if not self.margins:
            return {}
        margins, changed = np.concatenate(self.margins), np.concatenate(self.changed)
        if not changed.any():
            return {}
        lost = np.sort(margins[changed])
        return {"changed_margins": [round(float(m), 4) for m in lost[:MARGINS_KEPT]],
                "median_margin": round(float(np.median(margins)), 4),
                # every changed sample is among FP32's least-decided ones (as many as changed)
                "changed_least_decided": bool(lost[-1] <= np.sort(margins)[len(lost) - 1])}


def margin_note(details: dict) -> str | None:
    """Says when the classes that changed are those FP32 itself barely decides (a run's notes, a search's)."""
    lost = details.get("changed_margins")
    if not lost:
        return None
    count = len(lost)
    span = f"{lost[0]:.3f}" if count == 1 else f"{lost[0]:.3f}-{lost[-1]:.3f}"
    where = ("all among FP32's least-decided samples" if details.get("changed_least_decided")
             else "not only FP32's least-decided samples")
    shown = "" if count < MARGINS_KEPT else f" (the {MARGINS_KEPT} smallest shown)"
    samples = f"the {count} sample{'s' if count > 1 else ''} that changed class"
    return (f"{samples} had FP32 top-2 logit margins {span}{shown} against a median of "
            f"{details.get('median_margin', float('nan')):.3f}: {where}")
