"""``--ray local``: a Ray cluster on this machine with one simulated node per hardware class.

For trying the cluster path without machines: each node declares one unit of its class's resource,
so a trial that asks for one unit has the node to itself. Their timings share this machine's CPUs,
and every run is flagged so (workbench.cluster.nodes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from workbench.errors import WorkbenchError

#: The address that starts a local cluster instead of connecting to one.
LOCAL = "local"
#: A machine busy with other work starts a node's agents and workers slower than Ray's defaults allow.
#: Ray gives each process a fixed time to start; on a busy machine a second try usually makes it.
START_ATTEMPTS = 3
_PATIENCE = {"RAY_agent_register_timeout_ms": "180000", "RAY_worker_register_timeout_seconds": "180"}


class LocalCluster:
    """A head node that runs nothing (0 CPUs) and ``nodes_per_class`` nodes of each class."""

    def __init__(self, classes: Sequence[str], nodes_per_class: int = 1, cpus_per_node: int = 1) -> None:
        for name, value in _PATIENCE.items():
            os.environ.setdefault(name, value)
        self.nodes: dict = {}
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self.cluster = self._start(classes, nodes_per_class, cpus_per_node)
                return
            except Exception as exc:  # Ray raises a bare Exception when a node misses its start deadline
                if attempt == START_ATTEMPTS:
                    raise WorkbenchError(f"Could not start a local Ray cluster: {exc}",
                                         "A busy machine starts Ray's processes slowly: try again when it is "
                                         "quieter; stop a cluster left running with `ray stop`.") from exc

    def _start(self, classes: Sequence[str], nodes_per_class: int, cpus_per_node: int):
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            for hardware_class in classes:
                for slot in range(nodes_per_class):
                    name = f"{hardware_class}-{slot}"
                    self.nodes[name] = cluster.add_node(num_cpus=cpus_per_node, resources={hardware_class: 1},
                                                        node_name=name)
            cluster.wait_for_nodes()
        except BaseException:
            self.nodes.clear()
            cluster.shutdown()
            raise
        return cluster

    @property
    def address(self) -> str:
        return self.cluster.address

    def remove(self, name: str) -> None:
        """Take one node out, as a machine that leaves the cluster."""
        self.cluster.remove_node(self.nodes.pop(name), allow_graceful=True)

    def shutdown(self) -> None:
        self.cluster.shutdown()
