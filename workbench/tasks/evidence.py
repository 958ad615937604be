"""What a task metric is computed from, sample by sample, kept with the verdict.

A verdict on a few dozen samples is mostly sampling noise unless it says how sure it is, and the
same figures on another part of the data (a confirmation split, the samples FP32 itself decides
stably) must come from the same measurement, not a second one. So each meter hands over its
per-sample evidence: for a share, how many units each sample had and how many of them held (one
per sample for agreement and identical decodes; an image's FP32 detections for detections kept);
for a mean, each sample's value (sentence cosine, image IoU). Shares of one unit per sample are
stored as the indices that failed, so a run's JSON stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHARE, MEAN = "share", "mean"


@dataclass(frozen=True)
class Evidence:
    """Per-sample ``successes`` out of ``trials`` units (a share), or per-sample ``values`` (a mean)."""

    kind: str
    unit: str
    values: np.ndarray
    trials: np.ndarray | None = None

    @classmethod
    def share(cls, held: np.ndarray, trials: np.ndarray | None = None, unit: str = "samples") -> Evidence:
        held = np.asarray(held, dtype=np.int64)
        return cls(SHARE, unit, held, None if trials is None else np.asarray(trials, dtype=np.int64))

    @classmethod
    def mean(cls, values: np.ndarray, unit: str = "samples") -> Evidence:
        return cls(MEAN, unit, np.asarray(values, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.values)

    @property
    def successes(self) -> int:
        return int(self.values.sum())

    @property
    def units(self) -> int:
        """How many units the figure counts: samples, or detections for a per-detection share."""
        if self.kind == MEAN or self.trials is None:
            return len(self.values)
        return int(self.trials.sum())

    @property
    def value(self) -> float:
        if self.kind == MEAN:
            return float(self.values.mean()) if len(self.values) else float("nan")
        return self.successes / self.units if self.units else 1.0

    def failed(self) -> np.ndarray:
        """Indices of the samples whose outcome did not hold (a mean's samples are never 'failed' alone)."""
        if self.kind == MEAN:
            return np.zeros(0, dtype=np.int64)
        whole = np.ones(len(self.values), dtype=np.int64) if self.trials is None else self.trials
        return np.flatnonzero(self.values < whole)

    def subset(self, indices: np.ndarray) -> Evidence:
        indices = np.asarray(indices, dtype=np.int64)
        trials = None if self.trials is None else self.trials[indices]
        return Evidence(self.kind, self.unit, self.values[indices], trials)

    @classmethod
    def joined(cls, parts: list[Evidence]) -> Evidence:
        """The samples of several pieces of one kind, in order: one set judged as a whole."""
        first = parts[0]
        trials = None if first.trials is None else np.concatenate([p.trials for p in parts])
        return cls(first.kind, first.unit, np.concatenate([p.values for p in parts]), trials)

    def to_dict(self) -> dict:
        if self.kind == SHARE and self.trials is None:
            return {"kind": SHARE, "unit": self.unit, "n": len(self.values),
                    "failed": [int(i) for i in self.failed()]}
        data = {"kind": self.kind, "unit": self.unit,
                "values": [round(float(v), 6) if self.kind == MEAN else int(v) for v in self.values]}
        if self.trials is not None:
            data["trials"] = [int(t) for t in self.trials]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Evidence:
        if "failed" in data:
            held = np.ones(int(data["n"]), dtype=np.int64)
            held[np.asarray(data["failed"], dtype=np.int64)] = 0
            return cls.share(held, unit=data.get("unit", "samples"))
        trials = data.get("trials")
        if data["kind"] == SHARE:
            return cls.share(np.asarray(data["values"]), None if trials is None else np.asarray(trials),
                             data.get("unit", "samples"))
        return cls.mean(np.asarray(data["values"]), data.get("unit", "samples"))
