"""``--ray ADDRESS --on CLASS[,CLASS]``: where `sweep` and `tune` run their trials.

Without ``--ray`` the trials run here and Ray is never imported.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from typing import Any

from workbench.cluster.choice import cluster_executor


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the trials on a Ray cluster: 'auto', 'ray://host:10001', HOST:PORT, or 'local' "
                        "(a cluster on this machine with one simulated node per class)")
    parser.add_argument("--on", metavar="CLASS[,CLASS]",
                        help="hardware classes to run on with --ray (custom resources the nodes declare, e.g. "
                        "cpu-amx,h200); every trial runs once on a node of each")
    parser.add_argument("--local-nodes", type=int, default=1, metavar="N",
                        help="with --ray local: N simulated nodes per class (a tune's independent trials then run "
                        "side by side on them)")


def executor_from(args: argparse.Namespace) -> Any:
    """A context manager giving the RayExecutor the flags ask for, or None (this machine)."""
    executor = cluster_executor(args.ray, (args.on or "").split(","), args.local_nodes)
    return nullcontext(None) if executor is None else executor
