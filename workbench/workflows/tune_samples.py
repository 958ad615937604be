"""Evaluation samples spent where they decide something: only on trials whose interval straddles the budget.

Given more evaluation data than the search's share (``tune --search-samples N``), every trial is
first judged on the share. A trial whose interval lies wholly above the budget meets it and one
wholly below misses it, whatever more samples would say: neither is evaluated further. A trial
whose interval straddles the budget (the data cannot tell) is evaluated on more of the search
part's reserve, doubling the samples it is judged on each time, until its interval clears the
budget on one side or the reserve is spent. The extra samples are run through the trial's own
engines (FP32 and the variant, no timing), and judged with the share's as one set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions
from workbench.measure.drift import compare_engines
from workbench.model.loader import load_model
from workbench.runs.pipeline import Pipeline
from workbench.tasks import TaskChoice, TaskScore, task_score
from workbench.tasks.confidence import CANNOT_TELL
from workbench.workflows.tune_trials import Trial

if TYPE_CHECKING:
    from workbench.workflows.tune_confirm import Judging

Evaluate = Callable[[Trial, np.ndarray], TaskScore]


def spend(trial: Trial, judging: Judging, evaluate: Evaluate) -> int:
    """Evaluate ``trial`` on more of the reserve while its interval straddles the budget; returns the samples spent.

    ``trial.score`` becomes the verdict on the share and the samples spent on it, judged as one set."""
    reserve = judging.reserve_left()
    if not len(reserve) or "per_sample" not in trial.score.details:
        return 0
    share = judging.kept(judging.search)
    parts = [(task_score(trial.run.drift), np.searchsorted(judging.evaluated, share))]
    indices = [share]
    spent = 0
    while trial.score.state == CANNOT_TELL and spent < len(reserve):
        more = reserve[spent:spent + sum(len(i) for i in indices)]  # double the samples judged
        parts.append((evaluate(trial, more), np.arange(len(more))))
        indices.append(more)
        spent += len(more)
        trial.score = judging.joined(parts, np.concatenate(indices))
    trial.extra_samples = spent
    return spent


def evaluator(pipeline: Pipeline, model: str | Path, base: BuildOptions, judging: Judging,
              say: Callable[[str], None]) -> Evaluate:
    """Judge a trial's built file against FP32 on samples of the evaluation data, on the trial's own engine."""
    source = load_model(model).path

    def evaluate(trial: Trial, indices: np.ndarray) -> TaskScore:
        spec = trial.run.spec
        settings = trial.recipe.options(base, trial.kept).backend_options  # as the trial compiled it
        backend = get_backend(spec.backend, settings).for_workspace(pipeline.workspace.root)
        backend = backend.for_weights(sparse_2of4=spec.prune_method == "2:4")
        choice = TaskChoice(trial.score.task, base.metric, base.budget, base.confidence)
        data = judging.data.select(indices, "extra search samples")
        say(f"{trial.description}: its interval straddles the budget, evaluating {len(indices)} more search samples")
        with backend.for_precision("fp32").load(source) as reference, \
                backend.for_precision(spec.precision).load(trial.run.artifact) as variant:
            return task_score(compare_engines(reference, variant, data, base.batch, choice))

    return evaluate
