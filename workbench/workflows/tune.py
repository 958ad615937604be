"""``workbench tune``: the fastest variant that keeps the task metric within its budget.

What Intel Neural Compressor's accuracy-aware tuning and ``polygraphy debug precision`` aim at,
done on the ONNX graph and mapped to ONNX node names, every try a stored run:

0. **Screen**, on every backend, what costs one trial each: the backend's FP32, the precisions it
   runs from the FP32 file by a setting (OpenVINO's BF16 on a CPU with AVX-512 BF16 or AMX), plain
   dynamic INT8 and plain static INT8, and on OpenVINO the OpenVINO-native INT8 variant (NNCF on
   OpenVINO's own model, stored as IR; when it misses: its FFN outputs kept out of INT8 (the matrix
   products a smooth activation feeds; in BF16 where the CPU has it), then NNCF's accuracy control,
   then node fall-back, in ONNX node names mapped to its ignored scope). Speed-ups are against FP32
   on the default backend, timed in the same rounds, so trials on different engines compare. Then
   only the INT8 searches that could still beat the best passing variant found so far are run, the
   most promising first.
1. **Recipes** for each precision the backend can speed up: static INT8 with MinMax; the same with
   the fragile nodes kept in FP32 (Softmax, LayerNorm, GELU, Sigmoid, Exp, the first conv, the
   classifier Gemm, a detector's last layers before its decode), the likeliest pass; only the
   convolutions and matrix products quantized; percentile and entropy calibration, NNCF's
   post-training quantization; then the best calibration with
   the fragile nodes kept, per-tensor scales, S8 symmetric activations. Dynamic INT8 (models with
   weight MatMuls) per channel and per tensor.
2. **Node fall-back** from the closest recipe that still misses and is still faster than FP32 and
   the best pass (fall-back only slows a variant down): candidates are only the nodes whose
   exclusion changes the built file (the ones the quantizer touched). They are measured in
   contiguous groups (so a 150-layer detector stays affordable), ranked by what each group recovers
   of the task metric on the search samples where the start errs most (``tune_ranking``, NNCF's ranking
   subset, where the search part is large enough), and kept greedily, each step judged on the whole
   search part, until the budget is met; then every kept group is split
   in halves that go back to INT8 while the budget still holds, so each node left in FP32 pays.

3. **Weight-only** (``tune_weights``), after the cheaper screens, where the backend runs MatMulNBits
   files and the model's matrix layers do a real share of its work: int8-weights and int4-weights by
   round-to-nearest; one that does not pay tries int8 compute (ONNX Runtime's accuracy level 4), for
   4 bits mixed 4/8 bits by ratio (the layers 4 bits hurt most in 8) and AWQ, then falls back layer by
   layer to the backup precision (8 bits), ranked by the task metric as the node fall-back above.

4. **Run-off** (``tune_runoff``): the three fastest passing trials timed again side by side in the same
   rounds, their stored runs taking those figures, before the pick is made on them.

Calibration ranges and the quantization pre-pass are computed once per model and data and reused
by every trial (``precision.calibration``). A time budget stops the search between trials.

This module orchestrates: which trial comes next is the policy's (``tune_policy``), building and
timing one is the trial runner's (``tune_runner``).
"""

from __future__ import annotations

import resource
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.backends.registry import availability, get_backend
from workbench.build_options import DEFAULT_BACKEND, BuildOptions, DataSource
from workbench.errors import WorkbenchError
from workbench.measure.machine_load import load_text
from workbench.precision.quantizers import NATIVE_LABEL, NATIVE_QUANTIZERS
from workbench.progress import CancelToken, Progress, ProgressCallback
from workbench.runs import format as fmt
from workbench.runs.pipeline import Pipeline
from workbench.runs.recommend import keep_fp32_reason, measurably_faster
from workbench.runs.run import Run
from workbench.tasks import TaskScore
from workbench.tasks.classification import margin_note
from workbench.tasks.confidence import MEETS
from workbench.workflows.tune_confirm import Judging, confirmation_of, prepare
from workbench.workflows.tune_policy import (
    PROMISE,
    Search,
    best_speedup,
    label_nodes,
    mix_fastest_pass,
    refine,
    screen,
    screen_size,
)
from workbench.workflows.tune_runner import TrialRunner
from workbench.workflows.tune_runoff import run_off
from workbench.workflows.tune_trials import NamedRecipe, Trial, TuneResult

if TYPE_CHECKING:
    from workbench.cluster.ray_executor import RayExecutor
    from workbench.workflows.tune_runner import TrialPool

DEFAULT_TIME_BUDGET = 600.0


def searchable_backends() -> list[str]:
    """Every registered backend that runs on this machine (new backends join through the registry)."""
    return [name for name, status in availability().items() if status.available]


def closest_note(trials: Sequence[Trial]) -> str | None:
    """Where no trial qualifies, the measurably faster one nearest the budget, and for a classifier whether
    the classes it changed are those FP32 itself barely decides (then no reduced precision may keep them)."""
    faster = [t for t in trials if measurably_faster(t.run) and not t.met and not t.score.broken]
    if not faster:
        return None
    closest = max(faster, key=lambda t: (t.score.value, t.speedup))
    why = margin_note(closest.score.details) if closest.score.task == "classification" else None
    return (f"closest: {closest.run.run_id} on {closest.backend}, {closest.run.spec.precision} "
            f"({closest.recipe.name}), {closest.speedup:.2f}x at {closest.short_metric()} "
            f"(budget {closest.score.rule})" + (f"; {why}" if why else ""))


def screen_backends(runner: TrialRunner, names: Sequence[str], precisions: Sequence[str] | None,
                    steps: list[str]) -> tuple[dict[str, Run], list[tuple[Trial, float]]]:
    """Every backend's FP32, then its screen, within the whole time budget; the baselines and the INT8 trials that
    missed, the fastest first (its search has the most speed to spend on accuracy). The backend whose FP32 runs
    fastest is screened first: its variants are the likeliest fastest, so the others' are timed briefly."""
    baselines: dict[str, Run] = {}
    missed: list[tuple[Trial, float]] = []
    until = runner.started + runner.time_budget
    runner.plan_screen(sum(screen_size(runner.screens(backend, precisions)) for backend in names))
    # The FP32 runs are independent (together: side by side over a cluster); the screens depend on their order.
    found = runner.together([partial(runner.baseline, backend) for backend in names])
    for backend, baseline in zip(names, found, strict=True):
        if baseline is None:
            continue
        baselines[backend] = baseline
        if backend != DEFAULT_BACKEND:  # another engine's FP32 may itself be the fastest answer
            runner.add(Trial("screen", "FP32", NamedRecipe("fp32", "fp32"), (), baseline, 0.0, runner.judging))
    for backend in sorted(baselines, key=lambda name: baselines[name].comparable_speedup, reverse=True):
        missed += screen(Search(runner, backend, until, steps), precisions)
    runner.end_screen()
    return baselines, sorted(missed, key=lambda item: item[1], reverse=True)


def search_missed(runner: TrialRunner, missed: Sequence[tuple[Trial, float]], steps: list[str]) -> None:
    """Each promising INT8 search in turn, with an equal share of the time left, so the first cannot starve
    the others; one that cannot beat the best pass already found is skipped with a note. A search its share
    stopped is resumed with the time the others left: its trials so far are stored runs, found again at once."""
    stopped = [item for item in share_out(runner, missed, steps) if runner.time_left() > 0]
    if stopped:
        runner.notes.append(f"{len(stopped)} search(es) stopped by their share of the time budget resumed with the "
                            f"{runner.time_left():.0f} s the others left")
        share_out(runner, stopped, steps)


def share_out(runner: TrialRunner, searches: Sequence[tuple[Trial, float]],
              steps: list[str]) -> list[tuple[Trial, float]]:
    """``searches`` in turn, each with an equal share of the time left; those their share stopped."""
    stopped = []
    for index, (plain, potential) in enumerate(searches):
        if potential <= best_speedup(runner.trials) * PROMISE:
            note = (f"{plain.description} on {plain.backend}: not searched, its fastest screened variant "
                    f"({potential:.2f}x) cannot beat the {best_speedup(runner.trials):.2f}x found")
            runner.notes += [note] if note not in runner.notes else []
            continue
        search = Search(runner, plain.backend, runner.share_until(len(searches) - index), steps)
        found = refine(search, plain)
        if search.out_of_time() and (found is None or not found.met):
            stopped.append((plain, potential))
    return stopped


def tune(
    model: str | Path,
    options: BuildOptions | None = None,
    *,
    backends: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    time_budget: float = DEFAULT_TIME_BUDGET,
    pipeline: Pipeline | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    executor: RayExecutor | None = None,
    confirm: DataSource | bool = True,
    budget_stable: bool = False,
    exclude_unstable: bool | None = None,
    pool: TrialPool | None = None,
    search_samples: int | None = None,
) -> TuneResult:
    """Search recipes, then node fall-back, on every backend that runs here (or ``backends``).

    ``options`` give the data, batch, task, metric and budget; the search sets precision, recipe
    and kept nodes itself. The pick is the fastest trial that meets the budget and beats FP32 on the
    search part of the data and meets it on the confirmation part too (``confirm``: True splits the
    data 50/50, a data source confirms on it, False does not confirm). ``budget_stable`` sets the
    budget at FP32's own stability; ``exclude_unstable`` leaves FP32's unstable samples out of every verdict (None:
    where the budget is stricter than FP32's own stability and those samples flip, ``leaves_out_unstable``).
    ``search_samples`` judges trials on that many of the search part, spending the rest only on trials whose
    interval straddles the budget (``tune_samples``); every interval and verdict is at the options' ``confidence``.
    With a cluster ``executor`` of one hardware class the whole search runs on a node of that class
    (``RayExecutor.run_tune`` tunes several classes at once); on that node a ``pool`` of the class's nodes runs
    the screen's and the recipe ladder's independent trials side by side.
    """
    options = options or BuildOptions()
    if time_budget <= 0:
        raise WorkbenchError(f"Time budget {time_budget:g} s leaves no time to search.", "Give seconds > 0.")
    pipeline = pipeline or Pipeline()
    if executor is not None:
        return tuned_on(executor, model, options, pipeline, progress, cancel,
                        backends=backends, precisions=precisions, time_budget=time_budget, confirm=confirm,
                        budget_stable=budget_stable, exclude_unstable=exclude_unstable,
                        search_samples=search_samples)
    if pool is not None and search_samples is not None:
        raise WorkbenchError("--search-samples evaluates its extra samples on this machine, not on a cluster's nodes.",
                             "Leave out --search-samples, or tune on this machine.")
    progress_ = Progress(progress, cancel)
    options, judging = prepare(model, options, pipeline, confirm=confirm, budget_stable=budget_stable,
                               exclude_unstable=exclude_unstable, progress=progress_,
                               search_samples=search_samples)
    runner = TrialRunner(Path(model), options, pipeline, time_budget, progress_, judging, pool)
    runner.notes += judging.notes
    names = list(backends or searchable_backends())
    for name in names:
        get_backend(name)  # an unknown or missing backend is the user's to fix, said at once
    steps: list[str] = []
    baselines, missed = screen_backends(runner, names, precisions, steps)
    if not baselines:  # nothing to compare against: an error to fix, not "no variant meets the budget"
        raise WorkbenchError(f"The FP32 baseline failed on every backend searched, so nothing was tuned: "
                             f"{'; '.join(note.rstrip('.') for note in runner.notes)}.",
                             "Fix what the message says (the model or its data) and run tune again.")
    search_missed(runner, missed, steps)
    mix_fastest_pass(lambda backend: Search(runner, backend, runner.started + runner.time_budget, steps), runner)
    if pool is None:  # the finalists' engines are loaded here: a pool's trials ran on its nodes
        passing = [t for t in runner.trials if t.ranked_on is None and t.pays]
        run_off(passing, judging.data, options, pipeline, model, runner.notes, runner.timing_cap(),
                progress_.slice(0.99, 1.0))
    best, confirmed = confirmed_pick(runner.trials, runner.notes, judging, pipeline, model, options)
    runner.notes += [note for note in [busy_note(runner.trials)] if note]
    if best is not None:
        steps.append(pick_step(best))
    progress_.report("done", 1.0, "search finished")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return TuneResult(best, runner.trials, baselines, runner.elapsed(), peak, steps, runner.notes, confirmed, judging)


def busy_note(trials: Sequence[Trial]) -> str | None:
    """How many trials were timed while other processes or the hypervisor took the cores: the search compares
    speed-ups across trials, so a pick among them is only as sure as the quietest of their timings."""
    loads = [t.run.environment.get("machine_load") or {} for t in trials]
    busy = [load for load in loads if load.get("under_load")]
    if not busy:
        return None
    worst = max(busy, key=lambda load: load.get("other_cpu_share", 0.0) + load.get("steal_share", 0.0))
    return (f"{len(busy)} of {len(trials)} trials were timed while the machine was not idle (the worst: "
            f"{load_text(worst)}): their speed-ups may be low and noisy, and the pick among close ones may change; "
            "tune again when the machine is idle")


def confirmed_pick(trials: Sequence[Trial], notes: list[str], judging: Judging, pipeline: Pipeline,
                   model: str | Path, options: BuildOptions) -> tuple[Trial | None, TaskScore | None]:
    """The pick (``recommend``) confirmed on the data the search never chose on: one that misses there gives way
    to the fastest of the passing trials left, until one holds or none is left."""
    left = list(trials)
    while True:
        best = recommend(left, notes)
        if best is None:
            if len(left) < len(trials):
                notes.append("no variant that met the budget on the search part met it on the confirmation part")
            return None, None
        score = confirmation_of(best, judging, pipeline, model, options)
        if score is None or score.met:
            return best, score
        notes.append(f"{best.run.run_id} ({best.run.spec.precision}, {best.recipe.name}, {best.speedup:.2f}x on "
                     f"{best.backend}) met the budget on the search part ({best.score.value:.4f}) but not on the "
                     f"confirmation part ({score.value:.4f}): the next-fastest passing trial is confirmed instead")
        left = [t for t in left if t is not best]


def recommend(trials: Sequence[Trial], notes: list[str]) -> Trial | None:
    """The fastest trial that meets the budget and runs measurably faster than FP32; where none does, the
    notes say why and name the closest. A ranking trial, evaluated on part of the search data only, is no candidate."""
    trials = [t for t in trials if t.ranked_on is None]
    passing = [t for t in trials if t.pays]  # judged on the search's data, by the shared rule (``runs.recommend``)
    if passing:
        return portable_if_as_fast(plain_if_as_fast(max(passing, key=lambda t: t.speedup), passing, notes),
                                   passing, notes)
    notes.append(keep_fp32_reason([t.run for t in trials]))
    closest = closest_note(trials)
    if closest:
        notes.append(closest)
    return None


def plain_if_as_fast(best: Trial, passing: Sequence[Trial], notes: list[str]) -> Trial:
    """The same file compiled without the engine settings the search added (the BF16+INT8 mix's ``int8_hint``)
    unless those make it measurably faster and its interval shows it meets the budget: more layers in reduced
    precision are taken for speed, never on data that cannot tell whether they cost the budget."""
    if not best.recipe.backend_options:
        return best
    plain = [t for t in passing if not t.recipe.backend_options and t.run.artifact == best.run.artifact]
    if not plain:
        return best
    settings = ", ".join(f"{k}={v}" for k, v in best.recipe.backend_options)
    if as_fast(plain[0], best):
        why = f"is not measurably faster ({noise_text(best)})"
    elif best.score.state != MEETS:
        why = f"is faster, but at {best.short_metric()} the data cannot tell whether it meets the budget"
    else:
        return best
    notes.append(f"{best.recipe.name} ({best.speedup:.2f}x) {why}: the same file compiled without {settings} "
                 f"({plain[0].speedup:.2f}x) is the pick")
    return plain[0]


def portable_if_as_fast(best: Trial, passing: Sequence[Trial], notes: list[str]) -> Trial:
    """The fastest portable (ONNX) pick instead of an OpenVINO-native IR that is not measurably faster: within
    the native run's speed-up interval (``as_fast``), the file that runs on every backend is the better answer."""
    if best.recipe.recipe.quantizer not in NATIVE_QUANTIZERS:
        return best
    portable = [t for t in passing if t.recipe.recipe.quantizer not in NATIVE_QUANTIZERS]
    if not portable:
        return best
    closest = max(portable, key=lambda t: t.speedup)
    if not as_fast(closest, best):
        return best
    notes.append(f"the {NATIVE_LABEL} variant ({best.speedup:.2f}x) is not measurably faster than the portable "
                 f"{closest.run.spec.precision} file ({closest.speedup:.2f}x, {noise_text(best)}): the portable "
                 "file is the pick")
    return closest


def as_fast(other: Trial, best: Trial) -> bool:
    """Whether ``other``'s speed-up cannot be told from ``best``'s: it reaches the low end of ``best``'s interval
    (``Run.speedup_low``). By the per-round spread a 4% faster native INT8 on MiniLM gave way to BF16, though its
    rounds had settled it to 1%."""
    return other.speedup >= best.run.speedup_low


def noise_text(best: Trial) -> str:
    """What ``as_fast`` measured ``best`` against, for the note that says why another file is the pick."""
    return f"within {fmt.speedup_noise(best.run)}"


def pick_step(best: Trial) -> str:
    """The last step names the pick itself, so no earlier step can be read as describing it: which trial won,
    which nodes it keeps in FP32, and why it won (the fastest trial that meets the budget and pays)."""
    kept = best.kept_nodes
    shown = f": {label_nodes(kept)}" if kept else ""
    return (f"picked {best.run.label} on {best.backend} ({best.recipe.name}), {len(kept)} node(s) kept in "
            f"{best.run.kept_precision.upper()}{shown}: the fastest trial that meets the budget, {best.speedup:.2f}x")


def tuned_on(executor: RayExecutor, model: str | Path, options: BuildOptions, pipeline: Pipeline,
             progress: ProgressCallback | None, cancel: CancelToken | None, **search: object) -> TuneResult:
    """The search on a node of the executor's one hardware class, its runs stored in ``pipeline``'s workspace."""
    if len(executor.targets) != 1:
        raise WorkbenchError(f"tune() returns one result, for one hardware class; {len(executor.targets)} were "
                             "named.", "Give one class, or call executor.run_tune(...) for a result per class.")
    outcome = executor.run_tune(str(model), options, search, pipeline, progress, cancel)[executor.targets[0]]
    if isinstance(outcome, str):
        raise WorkbenchError(f"The tune on {executor.targets[0]} failed: {outcome}", "Fix what it says and run again.")
    return outcome
