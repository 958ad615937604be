"""Sequences (CTC recognisers): greedy decode of both outputs, and the share of samples decoding identically."""

from __future__ import annotations

import numpy as np

from workbench.tasks.base import Outputs
from workbench.tasks.evidence import Evidence

BLANK = 0


def sequence_output(outputs: Outputs, batch: int) -> np.ndarray:
    """Per-step class scores as ``[N, T, C]`` (a ``[T, N, C]`` output is turned around)."""
    array = next((a for a in outputs.values() if a.ndim == 3), None)
    if array is None:
        raise ValueError("no [N, T, classes] output")
    if array.shape[0] != batch and array.shape[1] == batch:
        array = np.swapaxes(array, 0, 1)
    return array


def greedy_decode(scores: np.ndarray, blank: int = BLANK) -> list[tuple[int, ...]]:
    """Best class per step, repeats merged, blanks dropped."""
    best = scores.argmax(axis=2)
    decoded = []
    for row in best:
        merged = row[np.concatenate([[True], row[1:] != row[:-1]])]
        decoded.append(tuple(int(c) for c in merged if c != blank))
    return decoded


def edit_distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


class SequenceMeter:
    def __init__(self, blank: int = BLANK) -> None:
        self.blank = blank
        self.samples = self.identical = 0
        self.edits = self.length = 0
        self.identical_each: list[bool] = []

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        batch = len(next(iter(inputs.values())))
        ref = greedy_decode(sequence_output(reference, batch), self.blank)
        var = greedy_decode(sequence_output(variant, batch), self.blank)
        for r, v in zip(ref, var, strict=True):
            self.samples += 1
            self.identical += r == v
            self.identical_each.append(r == v)
            self.edits += edit_distance(r, v)
            self.length += max(len(r), 1)

    def evidence(self) -> Evidence:
        return Evidence.share(np.asarray(self.identical_each, dtype=bool))

    def figures(self) -> dict:
        n = max(self.samples, 1)
        return {"metric": "identical_decodes", "value": self.identical / n, "identical_decodes": self.identical / n,
                "char_error_rate": self.edits / max(self.length, 1), "samples": self.samples}
