"""A finished run: its spec, where its artifacts are, and what was measured."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.precision.quantizers import quantizer_label
from workbench.runs.spec import RunSpec

#: The least speed-up, at the low end of its interval, worth a changed file: the interval covers the noise of the
#: rounds it was timed in, not the drift between two measurements (a run-off timing the same files again read them
#: 1-16% apart), so a variant settled at 1.005x over thousands of rounds of a 0.1 ms model is still no speed-up.
WORTHWHILE = 1.02
#: How a run's notes begin where a search stopped its timing early (``BuildOptions.timing_bar``).
TIMING_STOPPED = "timing stopped early"
#: How a run whose timing the search's cap cut short says so (after ``TIMING_STOPPED``).
TIMING_CAPPED = "at the search's cap"


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
    #: FP32 on the device's default engine (``Backend.baseline_backend``), timed beside the run in alternating
    #: blocks: the cross-engine figure. On the default engine itself it is the run's own FP32 reference.
    baseline_latency_ms: dict | None = None
    speedup_vs_baseline: float | None = None
    baseline_backend: str | None = None
    #: Half the interquartile range of the per-round speed-ups: where it exceeds |speed-up - 1|, FP32 and the
    #: variant are not told apart by this measurement.
    speedup_spread: float | None = None
    #: The 95% interval of ``comparable_speedup`` itself (``measure.latency.speedup_interval``): how far the
    #: figure may be off, where the spread is how far one round wanders; two variants are told apart by it.
    speedup_interval: list[float] | None = None
    #: The variant's and the FP32 model's files on disk (MB), and the resident memory loading each engine and
    #: running one batch added (MB, ``workbench.measure.footprint``): what a smaller variant saves.
    file_mb: float | None = None
    reference_file_mb: float | None = None
    engine_rss_mb: float | None = None
    reference_rss_mb: float | None = None
    #: The choices that shaped the measurement but not the run's identity: ``warmup``, ``repeats`` and the
    #: user's ``budget`` (None: the task's own), so the reproduce command can give them again.
    measurement: dict = field(default_factory=dict)
    #: The graph the INT8 quantizer actually saw (the pruned model, upgraded to opset 13 for per-channel
    #: scales, after the quantization pre-pass): the built file's node and tensor names are its own.
    quantized_from: str | None = None

    @property
    def comparable_speedup(self) -> float:
        """The speed-up against the device's default engine's FP32 where measured, else against this backend's."""
        return self.speedup_vs_baseline if self.speedup_vs_baseline is not None else self.speedup

    @property
    def cross_engine(self) -> bool:
        """Whether ``speedup_vs_baseline`` is against another engine's FP32 (else it is ``speedup`` itself)."""
        return self.speedup_vs_baseline is not None and self.baseline_backend not in (None, self.spec.backend)

    @property
    def speedup_low(self) -> float:
        """The low end of the figure runs are ranked by (``comparable_speedup``): its 95% interval's, or, for a run
        stored without one, the figure less its per-round spread. Every "measurably faster" test reads this one
        bound: whether a run pays, the bar a search's trial must reach, whether another file is as fast."""
        if self.speedup_interval:
            return float(self.speedup_interval[0])
        return self.comparable_speedup - (self.speedup_spread or 0.0)

    @property
    def within_noise(self) -> bool:
        """The headline speed-up (against this engine's FP32) cannot be told from 1: its 95% interval holds 1 where
        the interval is of the headline (the run is on the ranking engine), else its spread exceeds |speed-up - 1|."""
        if self.speedup_interval and not self.cross_engine:
            low, high = self.speedup_interval
            return low <= 1.0 <= high
        return self.speedup_spread is not None and self.speedup_spread > abs(self.speedup - 1)

    @property
    def measurably_faster(self) -> bool:
        """The ratio runs are ranked by (``comparable_speedup``) is above 1 beyond this run's timing noise and by
        enough to be worth a changed file: the low end of its interval (``speedup_low``) reaches ``WORTHWHILE``.
        One ratio both ranks a run and says it pays."""
        return self.speedup_low >= WORTHWHILE

    @property
    def timing_stopped_early(self) -> bool:
        """A search stopped its timing after a few rounds, once even its fastest round was below the search's bar:
        its speed-up is from those rounds only, so every table marks it (asked for again, it is timed in full)."""
        return any(note.startswith(TIMING_STOPPED) for note in self.notes)

    @property
    def timing_capped(self) -> bool:
        """A search's cap on each trial's timing (``BuildOptions.timing_cap``), not its bar, cut the rounds short."""
        return any(note.startswith(TIMING_STOPPED) and TIMING_CAPPED in note for note in self.notes)

    @property
    def label(self) -> str:
        """Short human name for tables and legends, e.g. 'int8 · channel 0.5 · b8', 'int8 · ops=compute · b1',
        'int8 OpenVINO-native · int8_hint=bf16 · 12 kept bf16 · b8': two runs with different recipes or engine
        settings never share a label."""
        quantizer = quantizer_label(self.spec.quantizer)
        parts = [f"{self.spec.precision} {quantizer}" if quantizer else self.spec.precision]
        if self.spec.prune_method and self.spec.prune_ratio:
            parts.append(f"{self.spec.prune_method} {self.spec.prune_ratio:g}")
        parts += [f"{name}={value}" for name, value in self.spec.quant_options]
        parts += [f"{name}={value}" for name, value in self.spec.backend_options]
        if self.spec.exclude_nodes:
            parts.append(f"{len(self.spec.exclude_nodes)} kept {self.kept_precision}")
        parts.append(f"b{self.spec.batch}")
        return " · ".join(parts)

    @property
    def kept_precision(self) -> str:
        """What the nodes kept out of INT8 run in: BF16 where the engine compiles the file with the BF16 hint
        (OpenVINO's ``int8_hint=bf16``, the BF16+INT8 mix), else FP32."""
        return dict(self.spec.backend_options).get("int8_hint", "fp32")

    @property
    def artifact_exists(self) -> bool:
        return Path(self.artifact).is_file()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        data["label"] = self.label
        # Where it was timed, beside the figures: a cluster run's class and the node's machine description.
        data["hardware_class"] = self.spec.hardware_class
        data["node"] = self.environment.get("node")
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Run:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["spec"] = RunSpec.from_dict(data["spec"])
        return cls(**fields)
