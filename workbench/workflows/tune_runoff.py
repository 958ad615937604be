"""The run-off: tune's closest passing trials timed again side by side, in the same rounds, before the pick.

Each trial of a search is timed against FP32 on the default engine in its own rounds, so two trials'
speed-ups are read minutes apart, each through its own noise (on a shared cloud machine the
hypervisor's steal moved ONNX Runtime's FP32 between 56 and 118 ms from one minute to the next). On
MiniLM on an AMX Xeon the search read OpenVINO's BF16 at 4.46x and its INT8 at 4.32x in two trials,
while side by side the INT8 ran 1.15x faster; on digits_resnet one trial read 9.11x where the same
file ran 5.39x beside the others. The ``RUNOFF_MAX`` fastest passing trials are loaded together with
the default engine's FP32 and each engine's own FP32, and timed in one set of rounds
(``measure.latency.time_rounds``; as in a run, the default engine's in blocks of their own).
Their stored runs take the new figures (every face reads them from there: one number), with a note
saying they were timed in the run-off; the pick is then made on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions
from workbench.data.dataset import Dataset
from workbench.measure.footprint import MB
from workbench.measure.latency import MAX_TIMING_S, LatencyStats, speedup_interval, speedup_spread, time_rounds
from workbench.measure.machine_load import load_note, watch_machine_load
from workbench.memory.system import available_bytes, release_freed, target_bytes
from workbench.precision.quantizers import NATIVE_QUANTIZERS
from workbench.progress import Progress
from workbench.runs.pipeline import MIN_TIMING_S, Pipeline, timing_feed
from workbench.runs.run import TIMING_STOPPED, Run
from workbench.workflows.tune_trials import Trial

#: The finalists: the fastest passing trials (each is one more engine in memory beside the FP32 ones).
RUNOFF_MAX = 3
#: How a run's note begins once the run-off re-timed it.
RUNOFF_NOTE = "timed again in tune's run-off"


def finalists(passing: Sequence[Trial]) -> list[Trial]:
    """The ``RUNOFF_MAX`` fastest passing trials, one per stored run, and what the pick may give way to: for one
    compiled with engine settings the same file without them, for an engine-native one the fastest portable file
    (``tune.plain_if_as_fast``, ``tune.portable_if_as_fast``), so that choice too is made on figures of the same
    rounds. By count, not by a range around the fastest: the fastest may be the one a noisy moment flattered."""
    ranked = list({t.run.run_id: t for t in sorted(passing, key=lambda t: t.speedup)}.values())[::-1]
    top = ranked[:RUNOFF_MAX]
    extra = [next((p for p in ranked if not p.recipe.backend_options and p.run.artifact == t.run.artifact), None)
             for t in top if t.recipe.backend_options]
    if any(t.recipe.recipe.quantizer in NATIVE_QUANTIZERS for t in top):
        extra.append(next((p for p in ranked if p.recipe.recipe.quantizer not in NATIVE_QUANTIZERS), None))
    chosen = {t.run.run_id: t for t in top + [t for t in extra if t is not None]}
    return list(chosen.values())


def run_off(passing: Sequence[Trial], data: Dataset, options: BuildOptions, pipeline: Pipeline, model: str | Path,
            notes: list[str], cap: float | None = None, progress: Progress | None = None) -> None:
    """Time the finalists side by side and store their new figures; a note says what changed."""
    chosen = finalists(passing)
    if len(chosen) < 2:
        return
    before = {t.run.run_id: t.speedup for t in chosen}
    release_freed()  # the search's closed engines: their pages back to the system before more are loaded
    chosen, left_out = within_memory(chosen)
    if left_out:
        shown = ", ".join(f"{t.recipe.name} {t.run.spec.precision} on {t.backend}" for t in left_out)
        room = f"the {target_bytes() / 2**30:g} GB a step may use (WORKBENCH_MEMORY_GB)"
        why = (f"it would not fit in {room}; its figure is its trial's" if len(left_out) == 1 else
               f"they would not fit in {room}; their figures are their trials'")
        notes.append(f"run-off: {shown} not timed again: beside the other engines {why}")
    if len(chosen) < 2:
        return
    if progress is not None:
        progress.report("time", 0.0, f"run-off: timing the {len(chosen)} fastest passing trials side by side")
    feed = timing_feed(data, options.batch)
    with ExitStack() as stack:
        engines, references, apart = _engines(chosen, model, pipeline, feed, stack)
        timed = {name: engine for name, engine in engines.items() if engine is not None}
        with watch_machine_load() as load:
            rounds = time_rounds(timed, feed, warmup=options.warmup, repeats=options.repeats,
                                 min_seconds=MIN_TIMING_S, max_seconds=cap or MAX_TIMING_S, apart=apart,
                                 progress=progress)
    for name in engines.keys() - timed.keys():  # a backend's unchanged FP32 is that backend's reference itself
        rounds[name] = rounds[references[name]]
    for trial in chosen:
        _store(trial.run, rounds, references[trial.run.run_id], options, load, len(chosen) - 1)
        pipeline.workspace.save_run(trial.run)
    shown = ", ".join(f"{t.recipe.name} {t.run.spec.precision} on {t.backend} {t.speedup:.2f}x "
                      f"(its trial read {before[t.run.run_id]:.2f}x)"
                      for t in sorted(chosen, key=lambda t: t.speedup, reverse=True))
    notes.append(f"run-off of the {len(chosen)} fastest passing trials, timed side by side in the same rounds "
                 f"against FP32 on {get_backend(chosen[0].backend).baseline_backend}: {shown}")


def _engines(chosen: Sequence[Trial], model: str | Path, pipeline: Pipeline, feed: dict,
             stack: ExitStack) -> tuple[dict, dict[str, str], list[str]]:
    """The default engine's FP32 ('<backend>:fp32'), each other engine's own FP32 once, and every finalist (None
    for a backend's unchanged FP32: its reference); which run-off names time in their own blocks: the default
    engine's, as the pipeline times a run (another runtime's variant and its FP32 call by call, paired)."""
    default = get_backend(chosen[0].backend).baseline_backend
    engines = {f"{default}:fp32": stack.enter_context(get_backend(default).load(Path(model)))}
    references: dict[str, str] = {}
    apart = [f"{default}:fp32"]
    for trial in chosen:
        spec = trial.run.spec
        backend = get_backend(spec.backend, dict(spec.backend_options)).for_workspace(pipeline.workspace.root)
        reference = references[trial.run.run_id] = f"{spec.backend}:fp32"
        if reference not in engines:
            engines[reference] = stack.enter_context(backend.for_precision("fp32").load(Path(model)))
        if spec.exact:
            engines[trial.run.run_id] = None
            continue
        engines[trial.run.run_id] = stack.enter_context(
            backend.for_precision(spec.precision).load(Path(trial.run.artifact)))
        engines[trial.run.run_id].infer(feed)  # the first call compiles on some engines: not a timed round
        if spec.backend == default:
            apart.append(trial.run.run_id)
    return engines, references, apart


def within_memory(chosen: Sequence[Trial]) -> tuple[list[Trial], list[Trial]]:
    """The finalists whose engines fit, all at once beside the FP32 ones, in what this process may still take
    (``available_bytes``), in the order given (the fastest first), and those left out. Each engine is counted at
    the larger of the memory loading it added in its trial (``Run.engine_rss_mb``) and its file: in a process
    that already freed as much, loading adds little resident memory, so the first alone reads low. On a
    BERT-base encoder (0.44 GB of weights) the run-off took tune from 3.6 GB to 4.4 GB before this check."""
    default = get_backend(chosen[0].backend).baseline_backend
    fp32 = max(max(t.run.reference_rss_mb or 0.0, t.run.reference_file_mb or 0.0) for t in chosen)
    room, loaded = available_bytes() / MB - fp32, {default}
    kept: list[Trial] = []
    left: list[Trial] = []
    for trial in chosen:
        run = trial.run
        cost = 0.0 if run.spec.exact else max(run.engine_rss_mb or 0.0, run.file_mb or 0.0)
        cost += 0.0 if run.spec.backend in loaded else fp32
        if cost > room:
            left.append(trial)
            continue
        kept.append(trial)
        room -= cost
        loaded.add(run.spec.backend)
    return kept, left


def _store(run: Run, rounds: dict[str, list[float]], reference: str, options: BuildOptions, load: dict,
           others: int) -> None:
    """The run's figures from the run-off's rounds, computed as the pipeline computes a run's (``_record``)."""
    baseline_name = f"{run.baseline_backend or run.spec.backend}:fp32"
    stats = {name: LatencyStats.from_samples(rounds[name], options.warmup, options.batch)
             for name in (run.run_id, reference, baseline_name)}
    variant, own, baseline = stats[run.run_id], stats[reference], stats[baseline_name]
    run.latency_ms, run.reference_latency_ms, run.baseline_latency_ms = (
        variant.to_dict(), own.to_dict(), baseline.to_dict())
    run.speedup = own.median / variant.median
    run.speedup_spread = speedup_spread(rounds[reference], rounds[run.run_id])
    run.speedup_vs_baseline = baseline.median / variant.median
    run.speedup_interval = speedup_interval(rounds[baseline_name], rounds[run.run_id])
    run.environment = {**run.environment, "machine_load": load}
    kept = [note for note in run.notes if not note.startswith((TIMING_STOPPED, RUNOFF_NOTE, "timed while"))]
    busy = load_note(load)
    run.notes = kept + [f"{RUNOFF_NOTE}, side by side with {others} other finalist(s)"] + ([busy] if busy else [])
