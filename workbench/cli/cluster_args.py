"""``--ray ADDRESS --on CLASS[,CLASS]``: where `sweep` and `tune` run their trials.

Without ``--ray`` the trials run here and Ray is never imported.
"""

from __future__ import annotations

import argparse
import importlib.util
from contextlib import nullcontext
from typing import Any

from workbench.errors import DataError


def ray_installed() -> bool:
    """Whether Ray could be imported, without importing it (it takes seconds and starts threads)."""
    return importlib.util.find_spec("ray") is not None


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the trials on a Ray cluster: 'auto', 'ray://host:10001', HOST:PORT, or 'local' "
                        "(a cluster on this machine with one simulated node per class)")
    parser.add_argument("--on", metavar="CLASS[,CLASS]",
                        help="hardware classes to run on with --ray (custom resources the nodes declare, e.g. "
                        "cpu-amx,h200); every trial runs once on a node of each")


def executor_from(args: argparse.Namespace) -> Any:
    """A context manager giving the RayExecutor the flags ask for, or None (this machine)."""
    if not args.ray:
        if args.on:
            raise DataError("--on names hardware classes of a cluster, but no --ray was given.",
                            "Add --ray ADDRESS (or --ray local to try it on this machine).")
        return nullcontext(None)
    if not ray_installed():
        raise DataError("--ray needs Ray, which is not installed.", "pip install 'onnx-workbench[ray]'.")
    if not args.on:
        raise DataError("--ray was given without --on.", "Name the hardware classes to run on, e.g. --on cpu-amx.")
    from workbench.cluster.ray_executor import RayExecutor

    return RayExecutor(args.ray, args.on.split(","))
