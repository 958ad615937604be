"""A finished run: its spec, where its artifacts are, and what was measured."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.precision.quantizers import quantizer_label
from workbench.runs.spec import RunSpec


@dataclass
class Run:
    """The object the CLI prints with --json, the widgets tabulate and the store persists."""

    run_id: str
    spec: RunSpec
    artifact: str
    model_path: str
    latency_ms: dict
    reference_latency_ms: dict
    speedup: float
    drift: dict
    calib_source: str | None = None
    eval_source: str | None = None
    notes: list[str] = field(default_factory=list)
    model_gflops: float | None = None
    environment: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    tables: dict[str, str] = field(default_factory=dict)
    #: FP32 on the default backend, timed in the same rounds, so runs on different backends compare.
    baseline_latency_ms: dict | None = None
    speedup_vs_baseline: float | None = None
    baseline_backend: str | None = None
    #: Half the interquartile range of the per-round speed-ups: where it exceeds |speed-up - 1|, FP32 and the
    #: variant are not told apart by this measurement.
    speedup_spread: float | None = None
    #: The stored FP32 reference of this model, backend and batch (workbench.runs.reference).
    shared_reference_ms: float | None = None
    #: The variant's and the FP32 model's files on disk (MB), and the resident memory loading each engine and
    #: running one batch added (MB, ``workbench.measure.footprint``): what a smaller variant saves.
    file_mb: float | None = None
    reference_file_mb: float | None = None
    engine_rss_mb: float | None = None
    reference_rss_mb: float | None = None

    @property
    def comparable_speedup(self) -> float:
        """The speed-up against the shared baseline where measured, else against this backend's FP32."""
        return self.speedup_vs_baseline if self.speedup_vs_baseline is not None else self.speedup

    @property
    def table_latency_ms(self) -> dict[str, float]:
        """Median and p90 on the shared reference's time scale, so every run of a model, backend and batch
        agrees with its speed-up; the run's own medians where no shared reference was stored."""
        median, p90 = self.latency_ms.get("median"), self.latency_ms.get("p90")
        reference = self.reference_latency_ms.get("median")
        if not self.shared_reference_ms or not reference or median is None:
            return {"median": median, "p90": p90}
        factor = self.shared_reference_ms / reference
        return {"median": median * factor, "p90": p90 * factor if p90 is not None else None}

    @property
    def within_noise(self) -> bool:
        """The speed-up's spread is larger than its distance from 1: not measurably faster or slower."""
        return self.speedup_spread is not None and self.speedup_spread > abs(self.speedup - 1)

    @property
    def label(self) -> str:
        """Short human name for tables and legends, e.g. 'int8 · channel 0.5 · b8'."""
        quantizer = quantizer_label(self.spec.quantizer)
        parts = [f"{self.spec.precision} {quantizer}" if quantizer else self.spec.precision]
        if self.spec.prune_method and self.spec.prune_ratio:
            parts.append(f"{self.spec.prune_method} {self.spec.prune_ratio:g}")
        if self.spec.exclude_nodes:
            parts.append(f"{len(self.spec.exclude_nodes)} kept fp32")
        parts.append(f"b{self.spec.batch}")
        return " · ".join(parts)

    @property
    def artifact_exists(self) -> bool:
        return Path(self.artifact).is_file()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        data["label"] = self.label
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Run:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["spec"] = RunSpec.from_dict(data["spec"])
        return cls(**fields)
