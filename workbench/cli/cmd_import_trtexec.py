"""`workbench import-trtexec`: open a profile exported by trtexec as the workbench's layer table.

It needs neither a GPU nor TensorRT, so a profile taken on any machine can be read anywhere.
"""

from __future__ import annotations

import argparse
import math

from workbench.cli.common import print_json
from workbench.profiles.trtexec_import import TrtexecProfile, find_layer_info, import_trtexec

_NAME_WIDTH = 64


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-trtexec",
        help="read a trtexec --exportProfile JSON (plus --exportLayerInfo) as a layer table",
        description="Read per-layer times from trtexec --exportProfile, with op types, precisions, "
        "ONNX nodes and FLOPs from the --exportLayerInfo file of the same run.",
    )
    parser.add_argument("profile", metavar="PROFILE_JSON", help="the --exportProfile file")
    parser.add_argument(
        "--layer-info",
        metavar="GRAPH_JSON",
        help="the --exportLayerInfo file (default: <stem>.graph.json beside the profile, if present)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    layer_info = args.layer_info or find_layer_info(args.profile)
    profile = import_trtexec(args.profile, layer_info)
    if args.json:
        print_json(profile.to_dict())
    else:
        print(format_profile(profile))
    return 0


def format_profile(profile: TrtexecProfile) -> str:
    """A terminal-width table: slowest layers are what people look for, so share comes first."""
    layers = profile.layers
    lines = [_header(profile)]
    lines.append(f"{'share':>6}  {'time ms':>9}  {'prec':<7} {'op type':<14} {'GFLOP/s':>9}  layer -> ONNX nodes")
    for row in layers.itertuples(index=False):
        name = row.name if len(row.name) <= _NAME_WIDTH else row.name[: _NAME_WIDTH - 3] + "..."
        rate = "" if math.isnan(row.gflops_per_s) else f"{row.gflops_per_s:9.0f}"
        nodes = ", ".join(row.onnx_nodes) if row.onnx_nodes else "-"
        lines.append(
            f"{row.share * 100:5.1f}%  {row.time_ms:9.4f}  {row.precision:<7} {row.op_type:<14} {rate:>9}  "
            f"{name} -> {nodes}"
        )
    if profile.sparse_layers:
        lines.append(f"sparse kernels: {', '.join(profile.sparse_layers)}")
    lines.extend(f"note: {note}" for note in profile.notes)
    return "\n".join(lines)


def _header(profile: TrtexecProfile) -> str:
    facts = [f"{len(profile.layers)} layers"]
    if profile.gpu:
        facts.append(profile.gpu)
    if profile.tensorrt_version:
        facts.append(f"TensorRT {profile.tensorrt_version}")
    if profile.batch:
        facts.append(f"batch {profile.batch}")
    if profile.build_precision:
        facts.append(f"built {profile.build_precision}")
    layer_sum = float(profile.layers["time_ms"].sum())
    timing = (
        f"layer {profile.time_statistic}s sum {layer_sum:.4f} ms; file total {profile.total_ms:.4f} ms "
        f"per inference over {profile.count or '?'} profiled runs"
    )
    if profile.gpu_compute_median_ms is not None:
        timing += f"; end-to-end GPU compute median {profile.gpu_compute_median_ms:.4f} ms (unprofiled)"
    return "  ".join(facts) + "\n" + timing
