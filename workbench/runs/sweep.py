"""A grid of variants (precision x pruning) through the one pipeline, and the pick within a budget.

Every cell goes through ``Pipeline.run``, whose runs are keyed by spec and saved as each one ends,
so an interrupted sweep resumes for free: re-running it serves the finished cells from the store and
builds only the missing ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from workbench.backends.registry import backend_names
from workbench.build_options import BuildOptions, DataSource
from workbench.errors import DataError
from workbench.progress import CancelToken, ProgressCallback
from workbench.runs import format as fmt
from workbench.runs.executor import Executor, LocalExecutor, Trial
from workbench.runs.pipeline import Pipeline
from workbench.runs.recommend import accuracy_loss, is_the_reference, pick
from workbench.runs.run import WORTHWHILE, Run
from workbench.tasks import rejudge, task_score
from workbench.tasks.judge import metric_dict
from workbench.vocabulary import PRECISIONS, PRUNE_METHODS


@dataclass(frozen=True)
class Cell:
    """One point of the grid; ratio 0 means the unpruned model."""

    precision: str
    prune_method: str | None = None
    prune_ratio: float = 0.0
    #: None: the sweep's base backend; otherwise one of its ``backends`` axis.
    backend: str | None = None

    @property
    def label(self) -> str:
        name = f"{self.precision} · {self.prune_method} {self.prune_ratio:g}" if self.prune_method else self.precision
        return f"{name} on {self.backend}" if self.backend else name


def judge_by_points(run: Run, points: float, confidence: float | None = None) -> None:
    """Re-judge ``run`` (in memory) by the sweep's budget in points, so the verdict a sweep's table shows
    (``ok >= 0.975``) is the one its pick obeys: accuracy with labels within ``points`` of FP32, any other
    task's measure at least 1 - points/100 (the same points ``accuracy_loss`` counts)."""
    score = task_score(run.drift)
    if score is None or ":" in score.metric:
        return
    by_accuracy = score.task == "classification" and score.metric == "accuracy"
    run.drift["task"] = rejudge(run.drift, points if by_accuracy else 1.0 - points / 100.0, confidence).to_dict()


def judged_at(run: Run, confidence: float) -> None:
    """Re-judge ``run`` (in memory) at ``confidence``: its interval and three-state verdict at that level."""
    if (score := rejudge(run.drift, None, confidence)) is not None:
        run.drift["task"] = score.to_dict()


def recommend(runs: Sequence[Run], budget_points: float) -> tuple[Run | None, str]:
    """The fastest run within the budget that is measurably faster than FP32, by its speed-up against the shared
    baseline (FP32 on the device's default engine), so runs of different backends compare; the same FP32 model
    on a faster engine is such a run. None ("keep FP32") where no variant within the budget pays. The rule is
    ``runs.recommend.pick``, the one ``workbench tune`` picks by."""
    within, unjudged = [], 0
    for run in runs:
        loss, _ = accuracy_loss(run.drift)
        if loss is None:
            unjudged += 1
        elif loss <= budget_points + 1e-9:
            within.append(run)
    variants = [run for run in within if not is_the_reference(run)]
    best = pick(variants)
    if best is not None:
        loss, basis = accuracy_loss(best.drift)
        return best, (f"fastest within {fmt.points_phrase(budget_points)} of FP32 {basis}: {best.spec.backend} "
                      f"{fmt.comparable_text(best)} at {loss:.2f} points lost")
    if variants:
        fastest = max(variants, key=lambda r: r.comparable_speedup)
        return None, (f"none of the variants within the budget runs measurably faster than FP32 (the fastest, "
                      f"{fastest.label} on {fastest.spec.backend}, {fmt.comparable_text(fastest)}, "
                      f"at least {fmt.times(fastest.speedup_low)}, under the {fmt.times(WORTHWHILE)} that pays): "
                      "keep FP32")
    if within:
        return None, "only FP32 itself stays within the budget: keep the original model"
    if not runs:
        return None, "no run finished"
    if unjudged == len(runs):
        return None, "no run has accuracy or top-1 agreement to judge the budget by"
    return None, f"no variant stays within {fmt.points_phrase(budget_points)} of the FP32 reference: keep FP32"


@dataclass
class SweepResult:
    """The runs of the grid (in grid order), the pick, and what was reused or failed."""

    runs: list[Run]
    recommended: Run | None
    reason: str
    accuracy_budget: float
    reused: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: On a cluster: the pick of each hardware class among its own runs (ratios never cross machines).
    by_target: dict[str, tuple[Run | None, str]] = field(default_factory=dict)
    #: The pick's run on the confirmation data (``--confirm``), and a note for each faster pick it replaced.
    confirm: Run | None = None
    confirm_notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        confirm = task_score(self.confirm.drift) if self.confirm is not None else None
        return {
            "confirm": None if confirm is None else {"run_id": self.confirm.run_id, "metric": metric_dict(confirm),
                                                     "samples": confirm.samples, "notes": self.confirm_notes},
            "runs": [run.to_dict() for run in self.runs],
            "recommended": self.recommended.run_id if self.recommended else None,
            "reason": self.reason,
            "accuracy_budget": self.accuracy_budget,
            "reused": self.reused,
            "failed": [{"cell": cell, "error": error} for cell, error in self.failed],
            **({"by_target": {target: {"recommended": best.run_id if best else None, "reason": reason}
                              for target, (best, reason) in self.by_target.items()}} if self.by_target else {}),
        }


def recommend_by_target(runs: Sequence[Run], targets: Sequence[str],
                        budget: float) -> dict[str, tuple[Run | None, str]]:
    """One pick per hardware class among that class's runs: a speed-up is only ever compared on its own machine."""
    return {target: recommend([run for run in runs if run.spec.hardware_class == target], budget)
            for target in targets}


@dataclass
class Sweep:
    """The grid (precision x pruning) over shared build options; ``run`` executes it through one pipeline.

    ``base`` holds every choice the cells share (data, backend, batch, timing, exclusions, repair);
    each cell is ``dataclasses.replace(base, precision=..., prune_method=..., prune_ratio=...)``.
    """

    model: str
    base: BuildOptions = field(default_factory=BuildOptions)
    precisions: Sequence[str] = ("fp32", "fp16", "int8")
    prune_methods: Sequence[str] = ()
    prune_ratios: Sequence[float] = (0.0,)
    accuracy_budget: float = 0.5
    #: Backends as a grid axis (e.g. onnxruntime-cpu, openvino); empty means ``base.backend`` alone.
    backends: Sequence[str] = ()
    #: Data the pick is confirmed on (never chosen on): a pick that misses the budget there gives way to the next.
    confirm: DataSource = None

    def _judge(self, run: Run) -> None:
        """The verdict the sweep's table shows and its pick obeys: by its budget in points (unless the user gave
        the task's own budget), at the options' confidence."""
        if self.base.budget is None and self.base.metric is None:
            judge_by_points(run, self.accuracy_budget, self.base.confidence)
        else:
            judged_at(run, self.base.confidence)

    def cells(self) -> list[Cell]:
        """Grid order: precision-major; ratio 0 appears once per precision whatever the methods."""
        self._validate()
        cells: list[Cell] = []
        for precision in self.precisions:
            for ratio in self.prune_ratios or (0.0,):
                for backend in self.backends or (None,):
                    variants = [Cell(precision, backend=backend)] if ratio == 0 else [
                        Cell(precision, m, float(ratio), backend) for m in self.prune_methods]
                    cells += [c for c in variants if c not in cells]
        return cells

    def grid(self) -> list[BuildOptions]:
        """The build options of every cell, in grid order."""
        return [self.base.replace(precision=c.precision, prune_method=c.prune_method, prune_ratio=c.prune_ratio,
                                  backend=c.backend or self.base.backend)
                for c in self.cells()]

    def _validate(self) -> None:
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown or not self.precisions:
            raise DataError(f"Unknown or no precision in the sweep: {', '.join(unknown) or 'none given'}.",
                            f"Choose from {', '.join(PRECISIONS)}.")
        bad_methods = [m for m in self.prune_methods if m not in PRUNE_METHODS]
        if bad_methods:
            raise DataError(f"Unknown pruning method: {', '.join(bad_methods)}.",
                            f"Choose from {', '.join(PRUNE_METHODS)}.")
        bad_ratios = [r for r in self.prune_ratios if not 0 <= r < 1]
        if bad_ratios:
            raise DataError(f"Pruning ratio {bad_ratios[0]:g} is outside [0, 1).",
                            "Use ratios such as 0,0.25,0.5 (0 means no pruning).")
        if any(r > 0 for r in self.prune_ratios) and not self.prune_methods:
            raise DataError("Pruning ratios above 0 were given without a pruning method.",
                            f"Add --prune-methods (one or more of {', '.join(PRUNE_METHODS)}).")
        unknown_backends = [b for b in self.backends if b not in backend_names()]
        if unknown_backends:
            raise DataError(f"Unknown backend in the sweep: {', '.join(unknown_backends)}.",
                            f"Choose from {', '.join(backend_names())}.")
        if self.accuracy_budget < 0:
            raise DataError("The accuracy budget is negative.", "Give the points of accuracy you accept to lose, "
                            "e.g. 0.5.")

    def run(
        self,
        pipeline: Pipeline | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_run: Callable[[Run, bool], None] | None = None,
        executor: Executor | None = None,
    ) -> SweepResult:
        """Run every cell; a cell that fails is recorded and the sweep goes on, cancel stops it.

        ``on_run(run, reused)`` is called as each cell ends, so a panel can fill its table live.
        ``executor`` decides where cells run: this machine (default), or every cell once per hardware
        class of a cluster (``workbench.cluster.RayExecutor``), each class then getting its own pick.
        """
        cells = self.cells()
        trials = [Trial(cell.label, options) for cell, options in zip(cells, self.grid(), strict=True)]
        pipeline = pipeline or Pipeline()
        executor = executor or LocalExecutor()
        if executor.targets and self.confirm is not None:
            raise DataError("--confirm runs its checks on this machine only, not per hardware class of a cluster.",
                            "Drop --confirm, or sweep on this machine.")
        known = {run.run_id: run.created for run in pipeline.workspace.runs()}
        finished: list[tuple[tuple[int, int], Run]] = []
        reused: list[str] = []
        failed: list[tuple[str, str]] = []
        options: dict[str, BuildOptions] = {}
        order = {target: rank for rank, target in enumerate(executor.targets)}
        for outcome in executor.run_trials(self.model, trials, pipeline, progress, cancel):
            if outcome.run is None:
                failed.append((outcome.name, outcome.error or "failed"))
                continue
            run = outcome.run
            self._judge(run)
            was_reused = known.get(run.run_id) == run.created
            if was_reused:
                reused.append(run.run_id)
            finished.append(((order.get(outcome.target, 0), outcome.index), run))
            options[run.run_id] = trials[outcome.index].options
            if on_run is not None:
                on_run(run, was_reused)
        runs = [run for _, run in sorted(finished, key=lambda item: item[0])]  # grid order within each target
        if not executor.targets:
            best, reason, confirm, notes = self.confirmed(runs, options, pipeline)
            return SweepResult(runs, best, reason, self.accuracy_budget, reused, failed, confirm=confirm,
                               confirm_notes=notes)
        picks = recommend_by_target(runs, executor.targets, self.accuracy_budget)
        best, reason = picks[executor.targets[0]] if len(picks) == 1 else (
            None, "one pick per hardware class (by_target): speed-ups are never compared across machines")
        return SweepResult(runs, best, reason, self.accuracy_budget, reused, failed, picks)

    def confirmed(self, runs: list[Run], options: dict[str, BuildOptions], pipeline: Pipeline
                  ) -> tuple[Run | None, str, Run | None, list[str]]:
        """The pick, and with ``confirm`` data the fastest pick whose budget holds on that data too."""
        best, reason = recommend(runs, self.accuracy_budget)
        notes: list[str] = []
        while best is not None and self.confirm is not None:
            check = pipeline.run(self.model, options[best.run_id].replace(eval=self.confirm))
            judged_at(check, self.base.confidence)
            loss, _ = accuracy_loss(check.drift)
            score = task_score(check.drift)
            if (score is None or score.met) and loss is not None and loss <= self.accuracy_budget + 1e-9:
                return best, reason, check, notes
            notes.append(f"{best.run_id} ({best.label}) is within the budget on the sweep's data but not on the "
                         f"confirmation data ({loss:.2f} points lost): the next-fastest is confirmed instead")
            runs = [run for run in runs if run.run_id != best.run_id]
            best, reason = recommend(runs, self.accuracy_budget)
        return best, reason, None, notes

