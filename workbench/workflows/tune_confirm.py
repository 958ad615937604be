"""Where a search judges its trials and where its pick is confirmed, with FP32's own stability beside both.

Before any variant is judged: FP32's stability on the evaluation data (``measure.stability``) is
measured, a budget stricter than it is flagged (or, asked for with ``--budget stable``, set at
it), and the data is split, seeded and stratified by FP32's class, into a search part and a
confirmation part (or a separate confirmation file is named). Every trial is evaluated once on
all the data and judged on the search part only, from its stored per-sample evidence; the pick is
then judged on the confirmation part, which the search never looked at. A pick that does not meet
the budget there gives way to the next-fastest passing trial.

Given a search share smaller than the search part (``search_samples``), trials are evaluated on the
share (and the confirmation part) only; the rest of the search part is a reserve that only a trial
whose interval straddles the budget is evaluated on (``tune_samples``). Every verdict is at the
asked ``confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from workbench.build_options import BuildOptions, DataSource
from workbench.data.dataset import Dataset
from workbench.data.split import SEED, confirmation_split
from workbench.errors import WorkbenchError
from workbench.measure.stability import FLOOR_ADVICE, Stability, measure_stability
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model
from workbench.progress import Progress
from workbench.runs.pipeline import Pipeline, sibling_data
from workbench.tasks import TaskChoice, TaskScore, task_score
from workbench.tasks.confidence import CONFIDENCE
from workbench.tasks.judge import joined, rejudge, score_on
from workbench.tasks.registry import ACCURACY_POINTS, TASKS

#: What ``--budget stable`` is spelled as.
STABLE = "stable"


@dataclass
class Judging:
    """The search's part of the data, the confirmation's, and FP32's stability on the whole."""

    data: Dataset
    search: np.ndarray
    confirm: np.ndarray | None
    confirm_data: DataSource = None
    stability: Stability | None = None
    excluded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    notes: list[str] = field(default_factory=list)
    #: The search part's samples beyond the search's share: evaluated only for trials that straddle the budget.
    reserve: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    confidence: float = CONFIDENCE

    def kept(self, part: np.ndarray) -> np.ndarray:
        """``part`` less the excluded samples, in its own order."""
        part = np.asarray(part, dtype=np.int64)
        return part[~np.isin(part, self.excluded)]

    @property
    def evaluated(self) -> np.ndarray:
        """The samples every trial's run is evaluated on (all of them, less the reserve), in data order."""
        return np.setdiff1d(np.arange(len(self.data)), self.reserve)

    @cached_property
    def trial_data(self) -> Dataset:
        """The data the trials' runs are given: all of it, or all but the reserve."""
        return self.data if not len(self.reserve) else self.data.select(self.evaluated, "less the search's reserve")

    def reserve_left(self) -> np.ndarray:
        """The reserve less the excluded samples, in the seeded order it is spent in."""
        return self.kept(self.reserve)

    def left_out(self, part: np.ndarray) -> str | None:
        count = len(part) - len(self.kept(part))
        return f"{count} FP32-unstable sample{'s' if count != 1 else ''} left out" if count else None

    def on(self, score: TaskScore, part: np.ndarray) -> TaskScore:
        """``score`` judged on ``part`` of the data less the excluded samples, saying what it left out.

        A user's metric keeps no per-sample figures: its verdict is the run's own, on all the data."""
        if "per_sample" not in score.details:
            return score
        positions = np.searchsorted(self.evaluated, self.kept(part))
        return self._marked(score_on(score, positions, confidence=self.confidence), self.kept(part), part)

    def joined(self, parts: list[tuple[TaskScore, np.ndarray]], indices: np.ndarray) -> TaskScore:
        """One verdict on several measurements' samples (``parts``: each score and the positions judged in it),
        ``indices`` naming those samples in the data, in the same order."""
        return self._marked(joined(parts, confidence=self.confidence), indices, self.search)

    def _marked(self, judged: TaskScore, indices: np.ndarray, part: np.ndarray) -> TaskScore:
        """``judged`` saying what it left out and how many of its changed samples FP32 itself flips."""
        if self.left_out(part):
            judged.details["left_out"] = self.left_out(part)
        if self.stability is not None:
            failed = np.asarray(_failed_of(judged), dtype=np.int64)
            unstable = np.intersect1d(indices[failed] if len(failed) else failed, self.stability.unstable)
            judged.details["unstable_changed"] = len(unstable)
        return judged

    def search_score(self, drift: dict) -> TaskScore:
        return self.on(task_score(drift), self.search)

    def to_dict(self) -> dict:
        return {"search_samples": len(self.kept(self.search)), "reserve_samples": len(self.reserve_left()),
                "confidence": self.confidence,
                "confirm_samples": None if self.confirm is None else len(self.kept(self.confirm)),
                "confirm_data": None if self.confirm_data is None else str(getattr(self.confirm_data, "label",
                                                                                   self.confirm_data)),
                "excluded_unstable": len(self.excluded)}


def _failed_of(score: TaskScore) -> list[int]:
    stored = score.details.get("per_sample", {})
    if "failed" in stored:
        return stored["failed"]
    if stored.get("kind") == "share":
        return [i for i, (held, of) in enumerate(zip(stored["values"], stored["trials"], strict=True)) if held < of]
    return []


def evaluation_data(model: str | Path, options: BuildOptions, pipeline: Pipeline) -> Dataset:
    """The evaluation data as the pipeline would load it (the ``eval.npz`` beside the model when none is given)."""
    if isinstance(options.eval, Dataset):
        return options.eval
    loaded = load_model(model)
    source = options.eval if options.eval is not None else sibling_data(loaded.path, "eval")
    if source is None:
        raise WorkbenchError("tune needs evaluation data to judge variants on.",
                             "Pass --eval PATH (an .npz with one array per input and optional labels).")
    return pipeline.load_data(source, inspect_model(loaded), "evaluation", options.preprocess)


def stable_budget(stability: Stability, labelled: bool) -> float:
    """The budget at FP32's own floor: its worst agreement, or with labels the points its flips may cost."""
    if labelled and stability.metric == "top1_agreement":
        return round((1 - stability.value) * 100, 4)
    return stability.value


def floor_note(stability: Stability, options: BuildOptions, labelled: bool, *, advice: bool = True) -> str | None:
    """Said before the search: a budget stricter than what FP32 itself keeps under changes that are none (with what
    the user may do about it where ``advice``)."""
    if options.metric is not None:
        return None
    if labelled and stability.metric == "top1_agreement":
        points = ACCURACY_POINTS if options.budget is None else options.budget
        if points >= (1 - stability.value) * 100 - 1e-9:
            return None
        return (f"the budget (accuracy within {points:g} points of FP32) is stricter than FP32's own stability: "
                f"{stability.text()}" + (f". {FLOOR_ADVICE}" if advice else ""))
    task = next((t for t in TASKS.values() if t.metric == stability.metric), None)
    threshold = options.budget if options.budget is not None else (task.budget if task else None)
    return None if threshold is None else stability.floor_note(threshold, stability.metric, advice=advice)


def leaves_out_unstable(stability: Stability | None, asked: bool | None, note: str | None) -> bool:
    """Whether the search judges without FP32's unstable samples: as asked, or (``asked`` None) where the budget is
    stricter than FP32's own stability and those samples are outcomes FP32 itself flips (a class, a decode). No
    variant can be asked to keep what one 8-bit step of noise or the other engine's FP32 changes; judged with
    them, such a budget is missed by the unchanged model itself and the search can only answer "none". A mean
    metric's low samples (an IoU under the budget) are kept: a variant can still match FP32 closely on them."""
    if asked is not None:
        return asked
    return stability is not None and note is not None and stability.flips and bool(stability.unstable)


def prepare(model: str | Path, options: BuildOptions, pipeline: Pipeline, *, confirm: DataSource | bool = True,
            budget_stable: bool = False, exclude_unstable: bool | None = None, progress: Progress | None = None,
            search_samples: int | None = None) -> tuple[BuildOptions, Judging]:
    """FP32's stability, the budget it implies (when asked), and the split; returns the options trials run with.

    ``confirm``: True splits the data 50/50; a data source confirms on it instead; False confirms nowhere.
    ``exclude_unstable``: True or False as asked; None leaves them out where ``leaves_out_unstable`` says so.
    ``search_samples``: the search's share of its part; the rest is spent only on trials that straddle the budget.
    """
    data = evaluation_data(model, options, pipeline)
    notes: list[str] = []
    stability = None
    if not data.is_random:
        try:
            stability = measure_stability(str(model), data, options.batch,
                                          TaskChoice(options.task, options.metric, options.budget), progress=progress)
        except WorkbenchError as exc:
            notes.append(f"FP32's stability not measured: {exc}")
    labelled = data.labels is not None and data.labels.ndim == 1
    if budget_stable:
        if stability is None:
            raise WorkbenchError("--budget stable needs FP32's stability, which could not be measured here.",
                                 "Give a number as the budget.")
        options = options.replace(budget=stable_budget(stability, labelled))
        notes.append(f"budget set at FP32's own stability: {options.budget:g} ({stability.text()})")
    elif stability is not None and (note := floor_note(stability, options, labelled)):
        auto = exclude_unstable is None
        exclude_unstable = leaves_out_unstable(stability, exclude_unstable, note)
        if auto and exclude_unstable:
            note = (f"{floor_note(stability, options, labelled, advice=False)}; so those "
                    f"{len(stability.unstable)} samples are left out of every verdict (--keep-unstable judges on "
                    "them too, --budget stable sets the budget at FP32's floor instead)")
        notes.append(note)
    exclude_unstable = bool(exclude_unstable)
    if options.metric is not None and (confirm is True or exclude_unstable):
        # A user's metric sees whole arrays: it keeps no per-sample figures to judge a part of the data by.
        notes.append("a custom metric is judged on all the evaluation data: no confirmation split and no "
                     "unstable samples left out (give --confirm DATA to confirm the pick on other data)")
        confirm, exclude_unstable = (False if confirm is True else confirm), False
    everything = np.arange(len(data))
    search, confirm_part, confirm_data = everything, None, None
    if confirm is True:
        if len(data) < 4:
            raise WorkbenchError(f"{len(data)} evaluation samples cannot be split into a search and a "
                                 "confirmation part.", "Give more samples, or --no-confirm.")
        search, confirm_part = confirmation_split(len(data), stability.classes if stability else None)
    elif confirm is not False and confirm is not None:
        confirm_data = confirm
    excluded = np.asarray(stability.unstable if exclude_unstable and stability else [], dtype=np.int64)
    search, reserve = search_share(search, search_samples, stability, options, notes)
    judging = Judging(data, search, confirm_part, confirm_data, stability, excluded, notes, reserve,
                      options.confidence)
    return options.replace(eval=judging.trial_data), judging


def search_share(search: np.ndarray, samples: int | None, stability: Stability | None, options: BuildOptions,
                 notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The search's share of its part (seeded, stratified as the split) and the reserve beyond it."""
    if samples is None or samples >= len(search):
        return search, np.zeros(0, dtype=np.int64)
    if options.metric is not None:
        notes.append("a custom metric keeps no per-sample figures: every trial is judged on the whole search part")
        return search, np.zeros(0, dtype=np.int64)
    if samples < 2:
        raise WorkbenchError(f"A search share of {samples} sample(s) cannot judge a trial.",
                             "Give --search-samples 2 or more, or leave it out to judge on the whole search part.")
    classes = None if stability is None or stability.classes is None else stability.classes[search]
    share, reserve = confirmation_split(len(search), classes, share=(samples + 0.5) / len(search))
    notes.append(f"trials judged on {len(share)} search samples; {len(reserve)} more are spent only on trials "
                 "whose interval straddles the budget")
    return search[share], np.random.default_rng(SEED).permutation(search[reserve])


def confirmation_of(trial, judging: Judging, pipeline: Pipeline, model: str | Path,
                    base: BuildOptions) -> TaskScore | None:
    """The trial's confirmation score, or None where the search keeps no confirmation data."""
    if judging.confirm is None and judging.confirm_data is None:
        return None
    return confirmation_score(trial, judging, pipeline, model, base)


def confirmation_score(trial, judging: Judging, pipeline: Pipeline, model: str | Path,
                       base: BuildOptions) -> TaskScore:
    """The trial judged on the data the search never looked at: the split's other part, or the named file."""
    if judging.confirm is not None:
        return judging.on(task_score(trial.run.drift), judging.confirm)
    options = trial.recipe.options(base.replace(backend=trial.backend), tuple(trial.kept))
    run = pipeline.run(model, options.replace(eval=judging.confirm_data))
    return rejudge(run.drift, None, judging.confidence)
