"""The tuning search's trial runner: a recipe and kept nodes in; a new trial, a trial already made, or
nothing out. It owns the pipeline, the deadline and the de-duplication; which trial to run next is the
policy's (``workflows.tune_policy``), which only ever talks to a runner through ``TrialRunner``'s methods.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import onnx

from workbench.backends.base import Backend
from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions
from workbench.errors import Busy, Cancelled, WorkbenchError
from workbench.measure.latency import MAX_TIMING_S
from workbench.memory.weight_values import drop_weight_values
from workbench.messages import library_message
from workbench.profiles.openvino_profile import quantized_by_native
from workbench.progress import Progress
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.tasks import task_score
from workbench.vocabulary import NATIVE_QUANTIZERS, WEIGHT_PRECISIONS
from workbench.workflows.tune_batch import T, in_turn, side_by_side
from workbench.workflows.tune_graph import (
    activation_fed_products,
    changed_by_exclusion,
    fragile_nodes,
    has_weight_matmul,
)
from workbench.workflows.tune_policy import NATIVE, NATIVE_BF16
from workbench.workflows.tune_ranking import RankingSubset, ranking_subset
from workbench.workflows.tune_samples import evaluator, spend
from workbench.workflows.tune_trials import NamedRecipe, Trial
from workbench.workflows.tune_weights import weight_candidates, weight_precisions

if TYPE_CHECKING:
    from workbench.workflows.tune_confirm import Judging

#: Timed rounds for trials that rank candidates (the pick's own timing is whatever trial found it).
RANKING_REPEATS = 10
#: Steps whose trials are judged by the metric first: fewer timing rounds do for them.
RANKING_STEPS = ("rank", "check")
#: What a ranking trial's run names as its evaluation data.
SUBSET_DATA = "the search samples with the largest error"
#: The bar's share given to the screen, whose trials are counted in advance.
SCREEN_PART = 0.5
#: The share of the time budget one trial's timing rounds may take, and the least they are given.
TIMING_SHARE = 1 / 30
MIN_TIMING_CAP_S = 5.0
#: A trial shorter than this found its run stored already: it says nothing about what the next trial costs.
MEASURED_S = 0.5
#: Precisions a backend may run from the FP32 file by a setting (``Backend.precision_hint``).
HINT_PRECISIONS = ("bf16", "fp16")


def precisions_for(backend: str, model: onnx.ModelProto) -> list[str]:
    """The precisions worth trying on a backend, cheapest first, as its capabilities say: those it runs from
    the FP32 file by a setting where its hardware has them (no file to build); dynamic INT8 where it has
    integer MatMul kernels and the model has weight MatMul/Gemm layers; static INT8; FP16 files where they
    pay (GPUs). No INT8 where the backend runs it for accuracy only (``Backend.int8_accuracy_only``): it
    cannot be the fastest."""
    instance = get_backend(backend)
    found = [precision for precision in HINT_PRECISIONS
             if _runs_by_hint(instance, precision) and not instance.dominated_hint(precision)]
    if instance.int8_accuracy_only is None:  # INT8 that cannot be faster is not worth a trial (ask with precisions)
        if instance.integer_matmul and has_weight_matmul(model):
            found.append("int8-dynamic")
        found.append("int8")
    if instance.half_files:
        found.append("fp16")
    return found + weight_precisions(backend, model)  # after the cheaper screens: a weight-only file takes longer


def _runs_by_hint(backend: Backend, precision: str) -> bool:
    try:
        return backend.precision_hint(precision) is not None
    except WorkbenchError:  # the hardware lacks it: nothing to screen
        return False


class TrialPool(Protocol):
    """Where a cluster runs a search's trials: ``width`` at a time, each as ``Pipeline.run`` would."""

    width: int

    def run(self, model: Path, options: BuildOptions, *, cancel=None, progress=None) -> Run: ...


class TrialRunner:
    """Runs the search's trials through one pipeline, each a stored run, until a deadline.

    ``until`` (monotonic seconds) is the deadline of the search a trial belongs to; the policy gives each
    search its share of the time. A trial that reaches a run already tried returns that trial, not a second.
    With a ``pool`` (the nodes of one hardware class) independent trials run side by side on its nodes.
    """

    def __init__(self, model: Path, base: BuildOptions, pipeline: Pipeline, time_budget: float,
                 progress: Progress, judging: Judging | None = None, pool: TrialPool | None = None) -> None:
        self.model = model
        #: Where every trial is judged (the search's part of the data) and its pick confirmed.
        self.judging = judging
        self.base = base
        self.pipeline = pipeline
        self.time_budget = time_budget
        self.progress = progress
        self.pool = pool
        self.started = time.monotonic()
        self.trials: list[Trial] = []
        self.notes: list[str] = []
        self.task: str | None = base.task
        self._stopped: set[tuple[str, float]] = set()
        #: Screen trials known in advance (``plan_screen``): the bar counts them; after the screen, time counts.
        self.planned: int | None = None
        self.attempts = 0
        self._screen_end: tuple[float, float] | None = None  # (monotonic time, bar fraction) when the screen ended
        spends = judging is not None and len(judging.reserve_left()) > 0
        self.evaluate = evaluator(pipeline, model, base, judging, self._say_samples) if spends else None

    @cached_property
    def model_graph(self) -> onnx.ModelProto:
        """The model without its weights' values (``drop_weight_values``): what every backend's screen and the
        fall-back read (graph, types, shapes), loaded once and held for the whole search."""
        return drop_weight_values(onnx.load(str(self.model), load_external_data=False))

    @cached_property
    def _activation_fed(self) -> list[str]:
        """``activation_fed_products`` of the model, walked once for the whole search."""
        return activation_fed_products(self.model_graph)

    def screens(self, backend: str, precisions: Sequence[str] | None) -> list[str]:
        """What the screen tries on ``backend``: ``precisions`` or those its capabilities make worth a trial, and
        its own INT8 quantizer on its own model where it has one (``Backend.native_int8``) and INT8 is tried,
        also compiled as a BF16+INT8 mix where the hardware has BF16. The engine's own INT8 comes right after
        the hints (no file to build): the likeliest fastest, so every slower trial after it is timed briefly."""
        instance = get_backend(backend)
        note = f"{backend}: INT8 not tried, {instance.int8_accuracy_only} (ask for it with --precisions int8)"
        if precisions is None and instance.int8_accuracy_only and note not in self.notes:
            self.notes.append(note)
        skipped = [f"{backend}: {why}" for precision in HINT_PRECISIONS if precisions is None and
                   _runs_by_hint(instance, precision) and (why := instance.dominated_hint(precision))]
        self.notes += [why for why in skipped if why not in self.notes]
        keys = list(precisions or precisions_for(backend, self.model_graph))
        if not (instance.native_int8 and "int8" in keys):
            return keys
        native = [NATIVE, NATIVE_BF16] if self.mixes_bf16(backend) else [NATIVE]
        hints = [key for key in keys if key in HINT_PRECISIONS]
        return hints + native + [key for key in keys if key not in hints]

    def mixes_bf16(self, backend: str) -> bool:
        """Whether ``backend`` compiles an INT8 file as a BF16+INT8 mix here: it has its own INT8 quantizer (its
        ``int8_hint`` option) and the hardware runs BF16."""
        instance = get_backend(backend)
        return instance.native_int8 and _runs_by_hint(instance, "bf16")

    def bar(self) -> float:
        """The speed-up a new trial must reach to matter: FP32's (a variant slower than FP32 is never the pick,
        nor a start for the fall-back), or the low end of the fastest paying trial's interval (``Run.speedup_low``: a
        trial within it may still be the pick, as the portable file)."""
        return max([1.0, *(t.run.speedup_low for t in self.trials if t.pays)])

    def together(self, jobs: Sequence[Callable[[], T]], enough: Callable[[T], bool] | None = None) -> list[T]:
        """Independent jobs in turn on this machine; side by side where a pool has several nodes."""
        if self.pool is None or self.pool.width <= 1:
            return in_turn(jobs, enough)
        return side_by_side(jobs, enough, self.pool.width)

    def plan_screen(self, trials: int) -> None:
        self.planned, self.attempts = trials, 0

    def end_screen(self) -> None:
        self._screen_end = (time.monotonic(), self.fraction())

    def fraction(self) -> float:
        """The bar: screen trials done of those planned (the screen's count is known: its share of the bar,
        ``SCREEN_PART``), then the time budget left after the screen (the searches' trials are not known)."""
        if self._screen_end is None and self.planned:
            return SCREEN_PART * min(1.0, self.attempts / max(self.planned, 1))
        if self._screen_end is None:
            return min(0.99, self.elapsed() / self.time_budget)
        ended, start = self._screen_end
        left = self.started + self.time_budget - ended
        return min(0.99, start + (1 - start) * ((time.monotonic() - ended) / left if left > 0 else 1.0))

    def progress_text(self) -> str:
        if self._screen_end is None and self.planned:
            return f"screen trial {self.attempts + 1} of {max(self.planned, self.attempts + 1)}"
        return f"trial {len(self.trials) + 1}"

    def _say_samples(self, message: str) -> None:
        self.progress.report("tune samples", self.fraction(), message)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def time_left(self) -> float:
        return max(0.0, self.started + self.time_budget - time.monotonic())

    def share_until(self, parts: int) -> float:
        """The deadline of a search given one of ``parts`` equal shares of the time left."""
        return time.monotonic() + self.time_left() / max(parts, 1)

    def out_of_time(self, until: float) -> bool:
        return time.monotonic() >= until

    def timing_cap(self) -> float | None:
        """The longest one trial's timing may take: a share of the whole budget (``TIMING_SHARE``), so a large model's
        trials leave time for the searches (a BERT-base round of three engines takes over a second on two cores);
        None where that share is no shorter than a run's own cap."""
        share = max(MIN_TIMING_CAP_S, self.time_budget * TIMING_SHARE)
        return share if share < MAX_TIMING_S else None

    def _costs(self, backend: str) -> list[float]:
        """What each trial on ``backend`` took that built or measured something (a run found again costs nothing)."""
        return [t.wall_s for t in self.trials if t.backend == backend and t.wall_s >= MEASURED_S]

    def expected_cost(self, backend: str) -> float:
        """What the next trial on ``backend`` is likely to take: the median of its trials so far (0 before any)."""
        costs = self._costs(backend)
        return statistics.median_high(costs) if costs else 0.0

    def would_overrun(self, backend: str) -> bool:
        """Whether a trial like the earlier ones on ``backend`` would end past the whole time budget: the budget is
        kept by not starting it (on a slow CPU one trial of a large model takes a minute), not by a late stop."""
        left = self.time_left()
        return left <= 0 or self.expected_cost(backend) > left

    def _stop_note(self, backend: str, until: float) -> str:
        if self.out_of_time(until):
            return (f"time budget reached ({self.time_budget:g} s in all, shared by the searches); "
                    f"the search on {backend} stopped there")
        return (f"time budget nearly reached: {self.time_left():.0f} s of the {self.time_budget:g} s left, and a trial "
                f"on {backend} takes about {self.expected_cost(backend):.0f} s; the search on {backend} stopped there "
                "rather than run past the budget")

    def baseline(self, backend: str) -> Run | None:
        """The backend's FP32 run (it also settles the task when none was given), or None with a note."""
        try:
            # Through the pool where there is one: backends are screened side by side, each FP32 on a free node.
            said = f"FP32 baseline on {backend}"  # a large model's FP32 takes a minute: never silent
            run = (self.pool or self.pipeline).run(
                self.model, self.base.replace(backend=backend, precision="fp32", recipe=Recipe()),
                cancel=self.progress.cancel, progress=lambda event: self.progress.report(
                    f"tune {event.step}", self.fraction(), f"{said} · {event.message}"))
        except (Cancelled, Busy):
            raise
        except WorkbenchError as exc:
            self.notes.append(f"{backend}: FP32 baseline failed: {exc}")
            return None
        except Exception as exc:  # the engine refused the unchanged model on this data: its own words, whole
            self.notes.append(f"{backend}: FP32 baseline failed: {library_message(exc)}")
            return None
        self.task = self.task or task_score(run.drift).task
        return run

    def ranking_subset(self, trial: Trial) -> RankingSubset | None:
        """Where the node fall-back from ``trial`` ranks its groups (``tune_ranking``); None: the whole search part."""
        return ranking_subset(self.judging, trial, self.base.batch)

    def add(self, trial: Trial) -> Trial:
        """A trial joins the search's record, after more samples where its interval straddles the budget (a ranking
        trial is no verdict: it gets none)."""
        if self.evaluate is not None and trial.ranked_on is None and (
                spent := spend(trial, self.judging, self.evaluate)):
            self.notes.append(f"{trial.description} on {trial.backend}: its interval straddled the budget on "
                              f"{len(self.judging.kept(self.judging.search))} search samples; {spent} more evaluated: "
                              f"{trial.short_metric()}, {trial.score.state}")
        self.trials.append(trial)
        return trial

    def trial(self, backend: str, until: float, step: str, description: str, recipe: NamedRecipe,
              kept: Sequence[str] = (), subset: RankingSubset | None = None) -> Trial | None:
        """Build and measure ``recipe`` with ``kept`` in FP32 on ``backend``; None when out of time or not built.

        With a ``subset`` the run is evaluated on those samples only (another run, by its data's digest, than the
        same file on the whole data) and the trial is a ranking trial, judged on them alone."""
        if self.out_of_time(until) or self.would_overrun(backend):
            if (backend, until) not in self._stopped:
                self._stopped.add((backend, until))
                self.notes.append(self._stop_note(backend, until))
            return None
        fraction = self.fraction()
        passing = sum(t.met for t in self.trials)
        said = (f"{self.progress_text()} ({len(self.trials)} done, {passing} meet the budget; "
                f"{self.time_left():.0f} s of the {self.time_budget:g} s budget left): {description}")
        self.attempts += 1
        self.progress.report("tune", fraction, said)
        started = time.monotonic()
        # The task is settled by the first baseline: NNCF's accuracy control validates by it.
        options = recipe.options(self.base.replace(backend=backend, task=self.task), tuple(kept))
        if step in RANKING_STEPS:
            options = options.replace(repeats=min(options.repeats, RANKING_REPEATS))
        if subset is not None:
            options = options.replace(eval=self.judging.data.select(subset.samples, SUBSET_DATA))
        # Timing stops early below the bar; a search that builds by itself (NNCF's accuracy control) gets the time left,
        # less what measuring its result will take (the cheapest trial so far: a timing and an evaluation, no build).
        cap = until - time.monotonic() - min(self._costs(backend), default=0.0)
        options = options.replace(timing_bar=self.bar(), build_time_cap=max(1.0, cap), timing_cap=self.timing_cap())
        try:
            # The trial's own steps, under the search's bar: a long build or timing round is never silent.
            builder = self.pool or self.pipeline  # a pool builds on whichever of its nodes is free
            run = builder.run(self.model, options, cancel=self.progress.cancel, progress=lambda event: (
                self.progress.report(f"tune {event.step}", fraction, f"{said} · {event.message}")))
        except (Cancelled, Busy):
            raise
        except WorkbenchError as exc:
            self.notes.append(f"{description} on {backend}: not built: {exc}")
            return None
        known = next((t for t in self.trials if t.run.run_id == run.run_id), None)
        if known is not None:  # the same file and settings reached again: one trial, not two
            return known
        judging = self.judging if subset is None else None  # a ranking run's own verdict is on its subset alone
        return self.add(Trial(step, description, recipe, tuple(kept), run, time.monotonic() - started, judging,
                              ranked_on=subset))

    # -- what the graphs say about a trial ---------------------------------------------------------------
    def _graphs(self, trial: Trial) -> tuple[onnx.ModelProto, onnx.ModelProto]:
        """The graph the quantizer saw (pruned, opset-upgraded, pre-processed: the run records it) and the
        file it wrote."""
        seen = trial.run.quantized_from
        if seen is None:
            raise WorkbenchError(f"Run {trial.run.run_id} does not record the graph its quantizer saw.",
                                 "Rebuild it (workbench run ... --force) and tune again.")
        return (onnx.load(seen, load_external_data=False), onnx.load(trial.run.artifact, load_external_data=False))

    def quantized_nodes(self, trial: Trial) -> list[str]:
        """The nodes whose exclusion changes ``trial``'s file (those its quantizer touched), in ONNX names and
        graph order: only these can be kept in FP32."""
        if trial.recipe.precision in WEIGHT_PRECISIONS:  # the matrix layers at the precision's bits
            return weight_candidates(self.model_graph, trial)
        if trial.recipe.recipe.quantizer in NATIVE_QUANTIZERS:  # OpenVINO IR: its layers mapped to ONNX nodes
            return quantized_by_native(self.model_graph, trial.run.artifact)
        return changed_by_exclusion(*self._graphs(trial))

    def activation_fed(self, trial: Trial) -> list[str]:
        """The matrix products fed by a smooth activation (``activation_fed_products``: a transformer's FFN outputs)
        that ``trial``'s quantizer touched, in ONNX node names: only these change the file when kept."""
        fed = self._activation_fed
        if not fed:
            return []
        touched = set(self.quantized_nodes(trial))
        return [name for name in fed if name in touched and name not in trial.kept_nodes]

    def fragile(self, trial: Trial) -> dict[str, list[str]]:
        """The fragile nodes ``trial``'s quantizer touched, by the reason they were picked."""
        seen, built = self._graphs(trial)
        changed = set(changed_by_exclusion(seen, built))
        found = {reason: [n for n in nodes if n in changed] for reason, nodes in fragile_nodes(seen, self.task).items()}
        return {reason: nodes for reason, nodes in found.items() if nodes}
