"""What a cluster offers: its nodes, their hardware classes, CPUs/GPUs, and which share a machine.

A hardware class is a custom resource a node declares (``ray start --resources='{"cpu-amx": 1}'``);
Ray's own resources (CPU, GPU, memory, node:...) are not classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_RAY_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory", "accelerator_type")


@dataclass
class NodeInfo:
    node_id: str
    name: str
    address: str
    alive: bool
    cpus: float
    gpus: float
    classes: list[str] = field(default_factory=list)

    @property
    def works(self) -> bool:
        """A node that can run trials: a head started with 0 CPUs and no class only schedules."""
        return self.alive and (self.cpus > 0 or self.gpus > 0 or bool(self.classes))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _classes(resources: dict) -> list[str]:
    return sorted(name for name in resources if not name.startswith(_RAY_RESOURCES) and not name.startswith("node:"))


def cluster_nodes() -> list[NodeInfo]:
    """Every node the connected cluster knows, alive or gone."""
    import ray

    return [NodeInfo(n["NodeID"], n.get("NodeName") or n["NodeManagerAddress"], n["NodeManagerAddress"],
                     bool(n["Alive"]), n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0),
                     _classes(n["Resources"])) for n in ray.nodes()]


def classes_alive(nodes: list[NodeInfo]) -> set[str]:
    return {c for node in nodes if node.alive for c in node.classes}


def shared_machines(nodes: list[NodeInfo]) -> dict[str, list[str]]:
    """Node id -> the names of the other working nodes on its machine (same address): contaminated timing."""
    by_address: dict[str, list[NodeInfo]] = {}
    for node in nodes:
        if node.works:
            by_address.setdefault(node.address, []).append(node)
    return {node.node_id: [other.name for other in group if other is not node]
            for group in by_address.values() for node in group if len(group) > 1}
