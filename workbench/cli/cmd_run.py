"""`workbench run`: build one variant and measure it against the FP32 reference."""

from __future__ import annotations

import argparse
import sys

from workbench.cli.common import add_build_options, print_json, stderr_progress
from workbench.pruning import EFFECTS, METHODS
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.tasks import task_score


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="build a variant and measure speed-up and drift")
    add_build_options(parser)
    parser.add_argument("--eval", help="evaluation data (default: eval.npz beside the model); "
                        "'random' or 'random:N' for timing on synthetic data")
    parser.add_argument("--prune-method", choices=METHODS,
                        help="; ".join(f"{name}: {effect}" for name, effect in EFFECTS.items()).replace("%", "%%"))
    parser.add_argument("--prune-ratio", type=float, default=0.0, help="fraction to remove, in [0, 1)")
    parser.add_argument("--no-repair", action="store_true",
                        help="skip the no-training repair of a pruned model on calibration data")
    parser.add_argument("--exclude", action="append", default=[], metavar="NODE",
                        help="keep this node in FP32 (repeatable)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--force", action="store_true", help="rebuild even if an identical run is cached")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    pipeline = Pipeline(args.workspace)
    run = pipeline.run(
        args.model,
        args.precision,
        calib=args.calib,
        eval=args.eval,
        batch=args.batch,
        backend=args.backend,
        calib_method=args.calib_method,
        per_channel=not args.per_tensor,
        prune_method=args.prune_method,
        prune_ratio=args.prune_ratio,
        prune_repair=not args.no_repair,
        exclude_nodes=args.exclude,
        repeats=args.repeats,
        force=args.force,
        task=args.task,
        metric=args.metric,
        budget=args.budget,
        progress=stderr_progress(sys.stderr.isatty()),
    )
    if args.json:
        print_json(run.to_dict())
    else:
        print(format_run(run))
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def format_run(run: Run) -> str:
    """The human summary: what was built, how fast, how far it drifted, and why."""
    lat, ref, drift = run.latency_ms, run.reference_latency_ms, run.drift
    score = task_score(drift)
    lines = [
        f"run {run.run_id}  {run.spec.model_name}  {run.label}  on {run.spec.backend}",
        f"  artifact      {run.artifact}",
        f"  latency       {lat['median']:.3f} ms median, {lat['p90']:.3f} ms p90 (batch {run.spec.batch})",
        f"  FP32 ref      {ref['median']:.3f} ms median, {ref['p90']:.3f} ms p90",
        f"  speed-up      {run.speedup:.2f}x" + ("  (slower than FP32)" if run.speedup < 0.95 else ""),
        f"  task          {score.task}: {score.verdict}" if score else "  task          (not judged)",
        f"  top-1 agree   {_pct(drift.get('top1_agreement'))}",
        f"  accuracy      {_pct(drift.get('accuracy'))} (FP32: {_pct(drift.get('reference_accuracy'))})",
        f"  max |err|     {drift['max_abs_error']:.4g}   cosine {drift['cosine_similarity']:.5f}",
        f"  eval data     {run.eval_source}",
    ]
    lines += [f"  note: {note}" for note in run.notes]
    return "\n".join(lines)
