"""Raw outputs: per-output cosine, SNR and error, accumulated batch by batch (the generic measure)."""

from __future__ import annotations

import numpy as np

from workbench.tasks.base import Outputs, cosine_rows
from workbench.tasks.evidence import Evidence


class OutputStats:
    """Running error statistics of one output; cosine is per sample, so one bad sample shows."""

    def __init__(self) -> None:
        self.max_abs = self.max_rel = 0.0
        self.abs_sum = 0.0
        self.count = 0
        self.noise = self.signal = 0.0
        self.cosines: list[np.ndarray] = []
        self.non_finite = 0

    def update(self, reference: np.ndarray, variant: np.ndarray) -> None:
        ref = reference.astype(np.float64).reshape(len(reference), -1)
        var = variant.astype(np.float64).reshape(len(variant), -1)
        self.non_finite += int((~np.isfinite(var)).sum())
        diff = np.abs(ref - var)
        if diff.size:
            self.max_abs = max(self.max_abs, float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf"))
            rel = diff / np.maximum(np.abs(ref), 1e-6)  # all NaN when the variant is: no warning, an infinite error
            self.max_rel = max(self.max_rel, float(np.nanmax(rel)) if np.isfinite(rel).any() else float("inf"))
        self.abs_sum += float(diff.sum())
        self.count += diff.size
        self.noise += float(((ref - var) ** 2).sum())
        self.signal += float((ref**2).sum())
        self.cosines.append(cosine_rows(ref, var))

    def result(self) -> dict:
        cos = np.concatenate(self.cosines) if self.cosines else np.ones(1)
        return {
            "max_abs_error": self.max_abs,
            "mean_abs_error": self.abs_sum / self.count if self.count else 0.0,
            "max_rel_error": self.max_rel,
            "cosine_similarity": float(cos.mean()),
            "min_cosine_similarity": float(cos.min()),
            "snr_db": float("inf") if self.noise == 0 else float(10 * np.log10(max(self.signal, 1e-300) / self.noise)),
            "non_finite": self.non_finite,
        }


class RawMeter:
    """Every output's statistics; the task value is the worst output's mean cosine."""

    def __init__(self) -> None:
        self.outputs: dict[str, OutputStats] = {}

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        for name in reference:
            self.outputs.setdefault(name, OutputStats()).update(reference[name], variant[name])

    def per_output(self) -> dict[str, dict]:
        return {name: stats.result() for name, stats in self.outputs.items()}

    def evidence(self) -> Evidence:
        """The per-sample cosines of the output with the worst mean cosine (the one the value names)."""
        if not self.outputs:
            return Evidence.mean(np.ones(1))
        worst = min(self.outputs.values(), key=lambda stats: stats.result()["cosine_similarity"])
        return Evidence.mean(np.concatenate(worst.cosines) if worst.cosines else np.ones(1))

    def figures(self) -> dict:
        per_output = self.per_output()
        worst = min((r["cosine_similarity"] for r in per_output.values()), default=1.0)
        return {"metric": "cosine", "value": worst,
                "snr_db": min((r["snr_db"] for r in per_output.values()), default=float("inf")),
                "max_abs_error": max((r["max_abs_error"] for r in per_output.values()), default=0.0)}
