"""What every task metric shares: a streaming meter over batches, and the verdict against a budget.

Meters see one batch of reference and variant outputs at a time and keep only small running
figures (matches, sums, decoded strings), so judging a variant never holds a whole evaluation
set's outputs in memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

Outputs = dict[str, np.ndarray]

#: Below this output cosine a variant is called broken whatever its task metric says.
BROKEN_COSINE = 0.9


class Meter(Protocol):
    """Accumulates one task's figures batch by batch."""

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        ...

    def figures(self) -> dict:
        """Every figure measured so far; ``value`` is the task's main one (higher is better)."""
        ...


@dataclass
class TaskScore:
    """The task's verdict on one variant: stored with the run, shown in every table and plot."""

    task: str
    metric: str
    value: float
    threshold: float
    met: bool
    rule: str
    broken: str | None = None
    guessed: bool = False
    details: dict = field(default_factory=dict)
    #: How sure the value is (``workbench.tasks.confidence``): its interval at ``confidence``, the units it
    #: counts (samples, or detections), meets / misses / cannot tell, and the units that would settle it.
    interval: list[float] | None = None
    samples: int | None = None
    unit: str = "samples"
    confidence: float = 0.95
    state: str | None = None
    samples_needed: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TaskScore:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @property
    def verdict(self) -> str:
        """One line for the CLI and notes, e.g. 'detections_kept 0.3400 [0.30, 0.38] on 412 detections
        (budget ...): MISSES the budget'."""
        from workbench.tasks.verdict_text import verdict_line

        return verdict_line(self)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows; two all-zero rows count as identical."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    cos = np.where(norms > 0, (a * b).sum(axis=1) / np.where(norms > 0, norms, 1.0), 0.0)
    return np.where(both_zero, 1.0, cos)
