"""`workbench tune`: the fastest variant whose task metric stays within its budget, on every backend here."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from workbench.backends.registry import backend_names
from workbench.cli.build_options import BuildOptionsArgs
from workbench.cli.cluster_args import add_cluster_args, executor_from
from workbench.cli.common import add_output_options, print_json, stderr_progress
from workbench.errors import WorkbenchError
from workbench.runs import format as fmt
from workbench.runs.frame import verdict
from workbench.runs.pipeline import Pipeline
from workbench.tasks.verdict_text import interval_text
from workbench.workflows.tune import DEFAULT_TIME_BUDGET, tune
from workbench.workflows.tune_trials import Trial, TuneResult

#: The shared build flags, less those the search sets itself (precision, quantization choices, kept nodes).
OPTIONS = BuildOptionsArgs(searched=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune", aliases=["sensitivity"], help="find the fastest variant within the task's accuracy budget "
        "(alias: sensitivity)",
        description="Screens every backend that runs here (its FP32, BF16/FP16 where it runs them by a setting, plain "
        "dynamic and static INT8), then, for the INT8 variants that miss the budget but could beat the best pass, "
        "tries quantization recipes (fragile ops kept FP32, calibration method, NNCF, per-tensor, S8) and keeps the "
        "fewest quantized nodes in FP32 that meet it. Speed-ups are against FP32 on the default backend; every "
        "trial is a stored run.")
    parser.add_argument("model", help="path to an .onnx model")
    OPTIONS.add_parser_args(parser)
    parser.add_argument("--backend", action="append", metavar="NAME",
                        help=f"search only this backend (repeatable; default: every one that runs here, of "
                        f"{', '.join(backend_names())})")
    parser.add_argument("--precisions", help="comma-separated precisions to search (default: what each backend "
                        "speeds up: bf16/fp16 where it runs them by a setting, int8-dynamic where the model has "
                        "weight MatMuls, int8, fp16 on GPUs)")
    parser.add_argument("--confirm", metavar="DATA",
                        help="confirm the pick on this data instead of on the half of --eval the search leaves out "
                        "(default: a seeded 50/50 split of the evaluation data, stratified by FP32's class)")
    parser.add_argument("--no-confirm", action="store_true",
                        help="search on all the evaluation data and confirm the pick nowhere")
    unstable = parser.add_mutually_exclusive_group()
    unstable.add_argument("--exclude-unstable", action="store_true", default=None,
                          help="leave out of every verdict the samples whose FP32 outcome flips under another "
                          "engine or one 8-bit step of input noise (every figure says how many it left out; "
                          "default: only where the budget is stricter than FP32's own stability and those "
                          "samples are flipped outcomes, a class or a decode)")
    unstable.add_argument("--keep-unstable", action="store_false", dest="exclude_unstable",
                          help="judge on every sample, even where FP32 itself does not keep the budget")
    parser.add_argument("--search-samples", type=int, metavar="N",
                        help="judge every trial on N samples of the search part; evaluate the rest of it only "
                        "for trials whose interval straddles the budget (default: every trial on the whole part)")
    parser.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET, metavar="SECONDS",
                        help=f"stop starting trials after this long (default {DEFAULT_TIME_BUDGET:g})")
    add_cluster_args(parser)
    add_output_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    options = OPTIONS.parse(args)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()] if args.precisions else None
    if args.confirm and args.no_confirm:
        raise WorkbenchError("--confirm and --no-confirm contradict each other.", "Give one of them.")
    confirm = False if args.no_confirm else (args.confirm or True)
    search = {"backends": args.backend, "precisions": precisions, "time_budget": args.time_budget,
              "confirm": confirm, "budget_stable": args.budget == "stable", "exclude_unstable": args.exclude_unstable,
              "search_samples": args.search_samples}
    progress = stderr_progress(sys.stderr.isatty())
    with executor_from(args) as executor:
        if executor is not None:
            return _handle_on_cluster(args, executor.run_tune(args.model, options, search, Pipeline(args.workspace),
                                                              progress))
        result = tune(args.model, options, pipeline=Pipeline(args.workspace), progress=progress, **search)
    if args.json:
        print_json(result.to_dict())
    else:
        _print_result(result)
    return 0 if result.recommended is not None else 1


def _print_result(result: TuneResult) -> None:
    if result.trials:
        print(trials_table(result.trials))
    print(result.explain())


def _handle_on_cluster(args: argparse.Namespace, results: dict[str, TuneResult | str]) -> int:
    """One search per hardware class, each on its own nodes: one result per class, never one across them."""
    if args.json:
        print_json({"by_target": {target: {"error": r} if isinstance(r, str) else r.to_dict()
                                  for target, r in results.items()}})
    else:
        for target, result in results.items():
            print(f"== on {target} ==")
            if isinstance(result, str):
                print(f"error: {result}")
            else:
                _print_result(result)
    found = [r for r in results.values() if not isinstance(r, str) and r.recommended is not None]
    return 0 if len(found) == len(results) else 1


def trials_table(trials: list[Trial]) -> str:
    """Every trial under column headers; speed-ups and verdicts through the shared formatter."""
    rows = pd.DataFrame([{
        "run": trial.run.run_id, "backend": trial.backend, "variant": trial.run.label,
        "speed-up": fmt.times(trial.speedup),
        "vs FP32 on": f"{trial.run.baseline_backend or trial.backend}, batch {trial.run.spec.batch}",
        "task metric": f"{trial.score.metric} {interval_text(trial.score)}",
        # a ranking trial was evaluated on the largest-error samples only: it orders groups, it is no verdict
        "verdict": verdict(trial.score) if trial.ranked_on is None else "ranking only",
        "step": trial.step,
        "what was tried": trial.description,
    } for trial in trials])
    return rows.to_string(index=False, justify="left")
