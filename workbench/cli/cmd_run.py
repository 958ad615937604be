"""`workbench run`: build one variant and measure it against the FP32 reference."""

from __future__ import annotations

import argparse
import sys

from workbench.cli.build_options import BuildOptionsArgs
from workbench.cli.common import add_output_options, print_json, stderr_progress
from workbench.runs import format as fmt
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.tasks import task_score

OPTIONS = BuildOptionsArgs()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="build a variant and measure speed-up and drift")
    parser.add_argument("model", help="path to an .onnx model")
    OPTIONS.add_parser_args(parser)
    parser.add_argument("--force", action="store_true", help="rebuild even if an identical run is cached")
    add_output_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    run = Pipeline(args.workspace).run(args.model, OPTIONS.parse(args), force=args.force,
                                       progress=stderr_progress(sys.stderr.isatty()))
    if args.json:
        print_json(run.to_dict())
    else:
        print(format_run(run))
    return 0


def format_run(run: Run) -> str:
    """The human summary: what was built, how fast against which FP32, how far it drifted, and why."""
    lat, ref, drift = run.latency_ms, run.reference_latency_ms, run.drift
    score = task_score(drift)
    slower = "  (slower than FP32)" if run.speedup < 1 and not run.within_noise else ""
    noise = "  (within the timing noise: it cannot be told from 1)" if run.within_noise else ""
    cross = fmt.cross_engine_text(run)
    baseline = run.baseline_latency_ms or {}
    lines = [
        f"run {run.run_id}  {run.spec.model_name}  {run.label}  on {run.spec.backend}",
        f"  artifact      {run.artifact}",
        f"  latency       {fmt.ms(lat['median'])} ms median, {fmt.ms(lat['p90'])} ms p90 (batch {run.spec.batch})",
        f"  FP32 ref      {fmt.ms(ref['median'])} ms median, {fmt.ms(ref['p90'])} ms p90: "
        f"{fmt.reference_name(run.spec.backend, run.spec.batch)}, timed in the same rounds",
        f"  speed-up      {fmt.speedup_text(run)}{slower}{noise}",
    ]
    if run.spec.hardware_class:
        node = (run.environment.get("node") or {}).get("name")
        lines.append(f"  timed on      {fmt.target_text(run.spec.hardware_class)}" + (f", node {node}" if node else "")
                     + f" ({run.spec.machine}), against that node's own FP32")
    if cross:
        lines.append(f"  cross-engine  {cross}; that FP32 at {fmt.ms(baseline.get('median'))} ms median, "
                     "timed in alternating blocks")
    lines += [
        f"  task          {score.task}: {score.verdict}" if score else "  task          (not judged)",
        f"  top-1 agree   {fmt.pct(drift.get('top1_agreement'))}",
        f"  accuracy      {fmt.pct(drift.get('accuracy'))} (FP32: {fmt.pct(drift.get('reference_accuracy'))})",
        f"  max |err|     {drift['max_abs_error']:.4g}   cosine {drift['cosine_similarity']:.5f}",
        f"  eval data     {run.eval_source}",
    ]
    lines += [f"  note: {note}" for note in run.notes]
    return "\n".join(lines)
