"""`workbench inspect`: what is in a model before anything is built."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from workbench.cli.common import print_json
from workbench.data.loaders import load_data
from workbench.data.validate import validate_dataset
from workbench.model.flops import has_nested_compute
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model
from workbench.profiles.flops_measured import measured_flops


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("inspect", help="show a model's inputs, outputs, ops, size and FLOPs")
    parser.add_argument("model")
    parser.add_argument("--eval", help="data whose sample shape FLOPs are counted at when height/width are "
                        "dynamic (default: eval.npz beside the model, when there is one)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    info = inspect_model(model)
    source = args.eval or (model.path.parent / "eval.npz" if (model.path.parent / "eval.npz").is_file() else None)
    nested = has_nested_compute(model.proto)
    measured = False
    if source is not None and (info.flops_dynamic or nested):
        data = load_data(Path(source) if not str(source).startswith("random") else source, info.inputs)
        data = validate_dataset(data, info.inputs, "evaluation")
        info = inspect_model(model, data.sample_shapes())
        if nested:  # shape inference stops at If branches: count what one real inference ran
            info = dataclasses.replace(info, flops_per_node=measured_flops(model.path, data.samples(0, 1)))
            measured = True
    if args.json:
        print_json(info.to_dict())
        return 0
    at = ", ".join(f"{name}[{'x'.join(map(str, shape))}]" for name, shape in info.flops_shapes.items())
    print(f"{info.name}  opset {info.opset}  {info.parameters:,} parameters  "
          f"{info.flops / 1e9:.3f} GFLOP per sample" + (f" at {at}" if at else "")
          + (" (shapes of one inference of the first sample: control flow hides them from shape inference)"
             if measured else ""))
    for tensor in info.inputs:
        print(f"  input   {tensor.describe()}")
    for tensor in info.outputs:
        print(f"  output  {tensor.describe()}")
    print("  ops     " + ", ".join(f"{op} x{n}" for op, n in info.op_histogram.items()))
    for warning in info.warnings:
        print(f"  warning {warning}")
    return 0
