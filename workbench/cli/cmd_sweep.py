"""`workbench sweep`: a grid of precisions and pruning ratios, the table, and the pick within a budget."""

from __future__ import annotations

import argparse
import sys

from workbench.cli.build_options import BuildOptionsArgs
from workbench.cli.cluster_args import add_cluster_args, executor_from
from workbench.cli.common import add_output_options, print_json, stderr_progress
from workbench.cli.runs_text import format_table
from workbench.runs import format as fmt
from workbench.runs.frame import runs_frame
from workbench.runs.pipeline import Pipeline
from workbench.runs.recommend import accuracy_loss
from workbench.runs.run import Run
from workbench.runs.sweep import Sweep, SweepResult
from workbench.tasks import task_score

OPTIONS = BuildOptionsArgs(sweep=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sweep", help="build and measure a grid of variants; recommend one")
    parser.add_argument("model", help="path to an .onnx model")
    OPTIONS.add_parser_args(parser)
    parser.add_argument("--accuracy-budget", type=float, default=0.5, metavar="POINTS",
                        help="accuracy points a variant may lose against FP32 (top-1 agreement without labels)")
    add_cluster_args(parser)
    parser.add_argument("--confirm", metavar="DATA",
                        help="confirm the pick on this data (never chosen on): a pick that loses more than the "
                        "budget there gives way to the next-fastest")
    add_output_options(parser)
    parser.set_defaults(func=handle)


def _announce(run: Run, reused: bool) -> None:
    """One stderr line per finished cell, terminal or not, so a CI log shows the sweep advancing."""
    loss, basis = accuracy_loss(run.drift)
    lost = "n/a" if loss is None else f"{fmt.points(loss)} pts ({basis})"
    origin = "from the store" if reused else "built"
    cross = fmt.cross_engine_text(run)
    where = f" [{run.spec.hardware_class}]" if run.spec.hardware_class else ""
    print(f"  {run.spec.model_name} {run.label} on {run.spec.backend}{where}: {fmt.speedup_text(run)}"
          + (f" ({cross})" if cross else "") + f", lost {lost}, {origin}", file=sys.stderr)


def handle(args: argparse.Namespace) -> int:
    precisions, prune_methods, prune_ratios = OPTIONS.grid_axes(args)
    sweep = Sweep(args.model, OPTIONS.parse(args), precisions, prune_methods, prune_ratios,
                  accuracy_budget=args.accuracy_budget, backends=args.backends, confirm=args.confirm)
    print(f"sweep: {len(sweep.cells())} variants of {args.model}", file=sys.stderr)
    with executor_from(args) as executor:
        if executor is not None:
            print(f"on the Ray cluster at {args.ray}, once per class: {', '.join(executor.targets)}", file=sys.stderr)
        result = sweep.run(Pipeline(args.workspace), progress=stderr_progress(sys.stderr.isatty()), on_run=_announce,
                           executor=executor)
    for cell, error in result.failed:
        print(f"error: {cell}: {error}", file=sys.stderr)
    if args.json:
        print_json(result.to_dict())
    else:
        _print_picks(result)
        for note in result.confirm_notes:
            print(f"  note: {note}")
        if result.confirm is not None:
            print(f"  confirmed on {result.confirm.eval_source}: {task_score(result.confirm.drift).verdict}")
    return 2 if result.failed else 0


def _print_picks(result: SweepResult) -> None:
    """One table and one pick per hardware class on a cluster, else the one table and pick of this machine."""
    here = {None: (result.runs, (result.recommended, result.reason))}
    groups = {target: ([r for r in result.runs if r.spec.hardware_class == target], pick)
              for target, pick in result.by_target.items()} or here
    for target, (runs, (best, reason)) in groups.items():
        if target is not None:
            print(f"\n== on {target} ==")
        print(format_table(runs_frame(runs), marked=best.run_id if best else None))
        print(f"\nrecommended: {best.run_id} ({best.label}), {reason}" if best else f"\nrecommended: none, {reason}")
