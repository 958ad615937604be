"""`workbench inspect`: what is in a model before anything is built."""

from __future__ import annotations

import argparse

from workbench.cli.common import print_json
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("inspect", help="show a model's inputs, outputs, ops, size and FLOPs")
    parser.add_argument("model")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    info = inspect_model(load_model(args.model))
    if args.json:
        print_json(info.to_dict())
        return 0
    print(f"{info.name}  opset {info.opset}  {info.parameters:,} parameters  "
          f"{info.flops / 1e9:.3f} GFLOP per sample")
    for tensor in info.inputs:
        print(f"  input   {tensor.describe()}")
    for tensor in info.outputs:
        print(f"  output  {tensor.describe()}")
    print("  ops     " + ", ".join(f"{op} x{n}" for op, n in info.op_histogram.items()))
    for warning in info.warnings:
        print(f"  warning {warning}")
    return 0
