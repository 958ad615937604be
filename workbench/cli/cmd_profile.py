"""`workbench profile`: per-layer time of one variant beside its end-to-end median."""

from __future__ import annotations

import argparse
import sys

from workbench.cli.build_options import BuildOptionsArgs
from workbench.cli.common import add_output_options, print_json, stderr_progress
from workbench.runs.pipeline import Pipeline
from workbench.workflows.profile import LayerProfile, profile_model

OPTIONS = BuildOptionsArgs(warmup=10, repeats=100,
                           eval_help="inputs to time on (default: eval.npz beside the model, else random)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("profile", help="per-layer timing of a variant (ONNX Runtime profiler)")
    parser.add_argument("model", help="path to an .onnx model")
    OPTIONS.add_parser_args(parser)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of both the plain and the profiled session (default 1; "
                        "0 = ONNX Runtime's default, which the profiler does not use)")
    parser.add_argument("--top", type=int, default=15, help="layers shown in the text table (default 15)")
    add_output_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    profile = profile_model(args.model, OPTIONS.parse(args), threads=args.threads, pipeline=Pipeline(args.workspace),
                            progress=stderr_progress(sys.stderr.isatty()))
    if args.json:
        print_json(profile.to_dict())
    else:
        print(format_profile(profile, args.top))
    return 0


def format_profile(profile: LayerProfile, top: int) -> str:
    """Slowest layers first, then the sum against end to end and where the rest went."""
    lines = [
        f"{profile.model_path}  {profile.precision}  batch {profile.batch}  "
        f"{profile.threads or 'default'} intra-op threads ({profile.repeats} runs after {profile.warmup} warm-up)",
        f"{'time ms':>9} {'share':>6}  {'precision':<8} {'op type':<18} layer",
    ]
    for row in profile.layers.sort_values("time_ms", ascending=False).head(top).itertuples():
        lines.append(f"{row.time_ms:9.4f} {row.share * 100:5.1f}%  {row.precision:<8} {row.op_type:<18} {row.name}")
    lines.append(f"layer sum {profile.layer_sum_ms:.4f} ms vs end-to-end median {profile.end_to_end_ms:.4f} ms: "
                 f"ratio {profile.ratio:.3f}")
    for row in profile.gap_table().itertuples():
        lines.append(f"  {row.component:<42} {row.time_ms:9.4f} ms")
    lines += [f"note: {note}" for note in profile.notes]
    return "\n".join(lines)
