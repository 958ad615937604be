"""How stable FP32 itself is, under changes no one would call a change: the floor any budget stands on.

A classifier shown photos outside its classes flips some of them between two FP32 engines, or
when the pixels move by one 8-bit step; no reduced precision can be asked to keep what FP32 does
not keep itself. So before variants are judged, FP32 on the default engine is compared, by the
same task metric, with FP32 on every other engine that runs here (OpenVINO's f32, say) and with
itself on inputs moved by one step of their data's quantization (1/255 of each float input's
range: one step of an 8-bit image, however it was normalised). Integer inputs (token ids, masks)
are left alone: there is no small change of a token.

The samples whose task outcome flips under any of these are FP32's unstable samples: marked in
verdicts, and excludable from them (``Stability.stable_indices``).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from workbench.backends.registry import availability, get_backend
from workbench.build_options import DEFAULT_BACKEND
from workbench.data.dataset import Dataset
from workbench.errors import WorkbenchError
from workbench.measure.drift import batch_outputs
from workbench.progress import Progress
from workbench.tasks import Judge, TaskChoice, task_score
from workbench.tasks.evidence import MEAN, Evidence

#: One step of an 8-bit image: the input noise no one would call a change.
STEPS = 255
#: What a user can do about a budget stricter than FP32's own stability.
FLOOR_ADVICE = "Use --budget stable to set it at that floor, or --exclude-unstable to judge without those samples"
SEED = 0


@dataclass
class Stability:
    """FP32 against FP32: the worst task value over the checks, what each check measured, the unstable samples."""

    metric: str
    value: float
    how: str
    samples: int
    unstable: list[int] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    #: FP32's predicted class per sample, where the task has classes (stratifies the confirmation split).
    classes: np.ndarray | None = None
    #: Whether the unstable samples are outcomes that flip (a share metric: a class, a decode, a detection) rather
    #: than values that fall below the budget (a mean metric): only a flipped outcome is one no variant can keep.
    flips: bool = True

    @property
    def flipped_share(self) -> float:
        return len(self.unstable) / self.samples if self.samples else 0.0

    def stable_indices(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.samples), np.asarray(self.unstable, dtype=np.int64))

    def text(self) -> str:
        """'FP32 itself flips 2.5% of these samples (2 of 80): ...': shown beside every verdict."""
        if not self.unstable:
            return f"FP32 itself flips none of these {self.samples} samples ({self.how})"
        return (f"FP32 itself flips {self.flipped_share:.1%} of these samples ({len(self.unstable)} of "
                f"{self.samples}; {self.how})")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "how": self.how, "samples": self.samples,
                "unstable": list(self.unstable), "flipped_share": self.flipped_share, "checks": self.checks}

    def floor_note(self, threshold: float, metric: str, *, advice: bool = True) -> str | None:
        """A warning when the budget asks more than FP32 itself keeps (None when it does not); ``advice`` adds what
        the user may do about it (left out where the search already does it)."""
        if metric != self.metric or threshold <= self.value + 1e-12:
            return None
        return (f"the budget ({metric} >= {threshold:g}) is stricter than FP32's own stability ({self.value:.4f}: "
                f"{self.text()}); a variant may miss it on samples FP32 itself does not decide"
                + (f". {FLOOR_ADVICE}" if advice else ""))


def perturbed(feed: dict[str, np.ndarray], ranges: dict[str, float], rng: np.random.Generator) -> dict:
    """Every float input moved up or down by one step (1/255 of its range over the data), at random per element."""
    moved = {}
    for name, array in feed.items():
        if np.issubdtype(array.dtype, np.floating) and ranges.get(name, 0) > 0:
            step = ranges[name] / STEPS
            moved[name] = (array + rng.choice([-step, step], size=array.shape)).astype(array.dtype)
        else:
            moved[name] = array
    return moved


def other_engines() -> list[str]:
    """Every backend that runs here besides the default one, each judged in its own FP32."""
    return [name for name, status in availability().items() if status.available and name != DEFAULT_BACKEND]


def _predicted(reference: dict[str, np.ndarray]) -> np.ndarray | None:
    first = next(iter(reference.values()))
    return first.argmax(axis=1) if first.ndim == 2 and first.shape[1] > 1 else None


def _flips(drift: dict, budget: float) -> np.ndarray:
    """Samples whose outcome changed: a share's failed samples, a mean's samples below the budget."""
    evidence = Evidence.from_dict(task_score(drift).details["per_sample"])
    if evidence.kind == MEAN:
        return np.flatnonzero(evidence.values < budget)
    return evidence.failed()


def measure_stability(model: str, data: Dataset, batch: int, choice: TaskChoice | None = None,
                      engines: list[str] | None = None, progress: Progress | None = None) -> Stability:
    """FP32 on the default engine against FP32 on ``engines`` (default: every other here) and on perturbed inputs.

    Judged without labels, by the task's own metric (a user's metric keeps no per-sample outcomes): what is
    measured is whether FP32's own outcome holds, not whether it is right.
    """
    progress = progress or Progress()
    choice = choice or TaskChoice()
    unlabelled = TaskChoice(choice.task)
    names = other_engines() if engines is None else engines
    ranges = {name: float(np.ptp(array)) for name, array in data.inputs.items()
              if np.issubdtype(array.dtype, np.floating)}
    judges = {f"FP32 on {name}": Judge(unlabelled) for name in names}
    noise = f"inputs moved by one 8-bit step (1/{STEPS} of their range)"
    if ranges:
        judges[noise] = Judge(unlabelled)
    if not judges:
        raise WorkbenchError("FP32's stability needs another engine or float inputs to perturb; this model has "
                             "integer inputs only and no other engine runs here.", "Install openvino.")
    rng = np.random.default_rng(SEED)
    classes: list[np.ndarray] = []
    with ExitStack() as stack:
        reference = stack.enter_context(get_backend(DEFAULT_BACKEND).load(model))
        loaded = {f"FP32 on {name}": stack.enter_context(get_backend(name).for_precision("fp32").load(model))
                  for name in names}
        total = max(1, -(-len(data) // batch))
        for index, feed in enumerate(data.batches(batch)):
            ref = batch_outputs(reference, feed, batch)
            predicted = _predicted(ref)
            if predicted is not None:
                classes.append(predicted)
            for what, judge in judges.items():
                engine = reference if what == noise else loaded[what]
                outputs = batch_outputs(engine, perturbed(feed, ranges, rng) if what == noise else feed, batch)
                judge.update(ref, outputs, None, feed)
            progress.report("stability", (index + 1) / total, f"FP32 stability, batch {index + 1}/{total}")
    return _summary(judges, len(data), np.concatenate(classes) if classes else None)


def _summary(judges: dict[str, Judge], samples: int, classes: np.ndarray | None) -> Stability:
    checks, unstable, flips = [], set(), True
    for what, judge in judges.items():
        drift = judge.result()
        score = task_score(drift)
        flips = Evidence.from_dict(score.details["per_sample"]).kind != MEAN
        flipped = _flips(drift, score.threshold)
        unstable.update(int(i) for i in flipped)
        checks.append({"what": what, "metric": score.metric, "value": score.value, "interval": score.interval,
                       "flipped": len(flipped), "samples": samples})
    worst = min(checks, key=lambda check: check["value"])
    how = "; ".join(f"{c['what']}: {c['metric']} {c['value']:.4f}, {c['flipped']} flipped" for c in checks)
    return Stability(worst["metric"], float(worst["value"]), how, samples, sorted(unstable), checks, classes, flips)

