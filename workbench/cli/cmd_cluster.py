"""`workbench cluster ADDRESS`: the nodes of a Ray cluster, their hardware classes, CPUs/GPUs and engines.

Each node is asked which of the workbench's backends run there, by a small task pinned to it, so
the answer is the node's own (its libraries, its devices), not this machine's.
"""

from __future__ import annotations

import argparse

from workbench.cli.common import print_json
from workbench.cluster.choice import ray_installed
from workbench.errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cluster", help="list a Ray cluster's nodes, hardware classes and engines")
    parser.add_argument("address", help="as ray.init takes it: auto, ray://host:10001, HOST:PORT")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if not ray_installed():
        raise DataError("Ray is not installed.", "pip install 'onnx-workbench[ray]'.")
    if args.address == "local":
        raise DataError("'local' starts a cluster only for the length of one sweep or tune: there is none to list.",
                        "Start one with `ray start --head --resources='{\"cpu-amx\": 1}'` and give its address.")
    from workbench.cluster.inventory import inventory

    nodes = inventory(args.address)
    if args.json:
        print_json({"nodes": nodes})
        return 0
    for node in nodes:
        state = "alive" if node["alive"] else "gone"
        print(f"{node['name']:24} {node['address']:16} {state:5}  CPUs {node['cpus']:g}  GPUs {node['gpus']:g}  "
              f"classes: {', '.join(node['classes']) or 'none'}")
        if node.get("engines"):
            print(f"{'':24} engines: {', '.join(node['engines'])}")
    return 0
