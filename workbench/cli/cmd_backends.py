"""`workbench backends`: which backends run on this machine, and why the others don't.

Backends that depend on the hardware's features (OpenVINO: AMX, AVX-512 BF16/VNNI) add indented
lines saying what they found and what each precision will do here.
"""

from __future__ import annotations

import argparse

from workbench.backends.registry import availability
from workbench.cli.common import print_json
from workbench.cluster.choice import ray_installed
from workbench.errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backends", help="list backends and whether they run here")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--ray", metavar="ADDRESS", help="also list the hardware classes this Ray cluster offers")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    status = availability()
    classes = _classes_at(args.ray) if args.ray else None
    ray = {"installed": ray_installed(), "reason": _ray_line(), **({"classes": classes} if args.ray else {})}
    if args.json:
        # "details" only where a backend has them (OpenVINO's device, CPU features and precision plan).
        print_json({**{name: {"available": s.available, "reason": s.reason, **({"details": list(s.details)}
                                                                                if s.details else {})}
                       for name, s in status.items()}, "ray": ray})
        return 0
    for name, s in status.items():
        print(f"{'yes' if s.available else 'no ':3}  {name:18} {s.reason}")
        for line in s.details:
            print(f"{'':23} {line}")
    print(f"\n{'yes' if ray_installed() else 'no ':3}  {'ray':18} {_ray_line()}")
    for name, nodes in (classes or {}).items():
        print(f"{'':23} class {name}: {len(nodes)} node(s) at {args.ray} ({', '.join(nodes)})")
    return 0


def _classes_at(address: str) -> dict[str, list[str]]:
    """Hardware class -> the live nodes that declare it, asked of the cluster (see `workbench cluster`)."""
    if not ray_installed():
        raise DataError("--ray needs Ray, which is not installed.", "pip install 'onnx-workbench[ray]'.")
    from workbench.cluster.inventory import inventory

    classes: dict[str, list[str]] = {}
    for node in inventory(address):
        for name in node["classes"] if node["alive"] else ():
            classes.setdefault(name, []).append(node["name"])
    return classes


def _ray_line() -> str:
    """Whether sweeps and tunes can run on a cluster; the classes are the cluster's, listed by `workbench cluster`."""
    if ray_installed():
        return ("installed: --ray ADDRESS --on CLASS runs sweep and tune trials on a cluster; "
                "`workbench cluster ADDRESS` lists its nodes and classes")
    return "not installed: pip install 'onnx-workbench[ray]' to run sweeps and tunes on a Ray cluster"
