"""What each node of a cluster can run: asked of the node itself by a task pinned to it."""

from __future__ import annotations

import logging

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from workbench.cluster.nodes import cluster_nodes
from workbench.errors import WorkbenchError

#: Seconds to wait for a node to answer which engines it runs.
ASK_TIMEOUT_S = 120.0


def _engines_here() -> list[str]:
    from workbench.backends.registry import availability

    return [name for name, status in availability().items() if status.available]


def inventory(address: str) -> list[dict]:
    """Every node with its classes, CPUs/GPUs and (for live nodes) the backends that run on it."""
    joined = not ray.is_initialized()
    if joined:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise WorkbenchError(f"Cannot connect to the Ray cluster at '{address}': {exc}",
                                 "Start it with `ray start --head` (see the README).") from exc
    try:
        nodes = cluster_nodes()
        asking = ray.remote(num_cpus=0)(_engines_here)
        answers = {node.node_id: asking.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node.node_id, soft=False)).remote() for node in nodes if node.works}
        rows = []
        for node in nodes:
            row = node.to_dict()
            if node.node_id in answers:
                try:
                    row["engines"] = ray.get(answers[node.node_id], timeout=ASK_TIMEOUT_S)
                except ray.exceptions.RayError as exc:
                    row["engines_error"] = f"{type(exc).__name__}: workbench may not be installed on this node"
            rows.append(row)
        return rows
    finally:
        if joined:
            ray.shutdown()
