"""``--ray local``: a Ray cluster on this machine with one simulated node per hardware class.

For trying the cluster path without machines: each node declares one unit of its class's resource,
so a trial that asks for one unit has the node to itself. Their timings share this machine's CPUs,
and every run is flagged so (workbench.cluster.nodes).

Starting Ray's processes is slow on a busy machine, and Ray gives some of them a fixed 30 s. The
waits that are ours (nodes registering, attempts to start again) grow with the machine's load, and
a start that still fails says what the load was and how to start the cluster once by hand instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from workbench.errors import WorkbenchError

#: The address that starts a local cluster instead of connecting to one.
LOCAL = "local"
#: Seconds a local cluster is given to start on a machine whose load is at most one per core.
START_S = 90.0
#: Attempts at most: Ray's own fixed deadlines make a second try on a busy machine usually succeed.
START_ATTEMPTS = 3
_PATIENCE = {"RAY_agent_register_timeout_ms": "180000", "RAY_worker_register_timeout_seconds": "180"}


def machine_load() -> tuple[float, int]:
    """The 1-minute load average and the core count."""
    return os.getloadavg()[0], os.cpu_count() or 1


def start_deadline(load: float, cores: int) -> float:
    """Seconds to give a local cluster to start: ``START_S``, times the load per core where it is over one
    (each of Ray's processes then gets that much less of a core)."""
    return START_S * max(1.0, load / max(1, cores))


class LocalCluster:
    """A head node that runs nothing (0 CPUs) and ``nodes_per_class`` nodes of each class."""

    def __init__(self, classes: Sequence[str], nodes_per_class: int = 1, cpus_per_node: int = 1) -> None:
        for name, value in _PATIENCE.items():
            os.environ.setdefault(name, value)
        self.nodes: dict = {}
        self.cpus_per_node = cpus_per_node
        started = time.monotonic()
        until = started + start_deadline(*machine_load())
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start(classes, nodes_per_class, until)
                return
            except Exception as exc:  # Ray raises a bare Exception when a node misses its own start deadline
                if attempt == START_ATTEMPTS or time.monotonic() >= until:
                    raise start_failed(exc, attempt, time.monotonic() - started) from exc

    def _start(self, classes: Sequence[str], nodes_per_class: int, until: float) -> None:
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            for hardware_class in classes:
                for _ in range(nodes_per_class):
                    self.add(hardware_class)
            self.wait(until)
        except BaseException:
            self.nodes.clear()
            self.cluster.shutdown()
            raise

    @property
    def address(self) -> str:
        return self.cluster.address

    def add(self, hardware_class: str) -> str:
        """Start one more node of ``hardware_class`` (named ``<class>-<n>``) without waiting for it; its name."""
        name = f"{hardware_class}-{sum(n.startswith(f'{hardware_class}-') for n in self.nodes)}"
        self.nodes[name] = self.cluster.add_node(wait=False, num_cpus=self.cpus_per_node,
                                                 resources={hardware_class: 1}, node_name=name)
        return name

    def wait(self, until: float) -> None:
        """Every node started has joined the cluster by ``until`` (monotonic seconds, looked at least once),
        or a WorkbenchError."""
        started = time.monotonic()
        try:
            self.cluster.wait_for_nodes(timeout=max(1.0, until - started))
        except TimeoutError as exc:
            raise start_failed(exc, 1, time.monotonic() - started) from exc

    def remove(self, name: str) -> None:
        """Take one node out, as a machine that leaves the cluster."""
        self.cluster.remove_node(self.nodes.pop(name), allow_graceful=True)

    def shutdown(self) -> None:
        self.cluster.shutdown()


def start_failed(exc: BaseException, attempts: int, waited_s: float) -> WorkbenchError:
    """Why the local cluster did not start, with the machine's load, and what to do instead."""
    load, cores = machine_load()
    return WorkbenchError(
        f"The local Ray cluster did not start in time ({attempts} attempt(s), {waited_s:.0f} s; load average "
        f"{load:.1f} on {cores} cores): {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
        "A busy machine starts Ray's processes slowly and Ray gives some of them a fixed 30 s: try again when it "
        "is quieter, or start the cluster once by hand and reuse it: `ray start --head --num-cpus=0`, then for "
        "each class `ray start --address=127.0.0.1:6379 --num-cpus=1 --resources='{\"CLASS\": 1}'` (repeat one "
        "that fails), and give --ray auto. `ray stop` stops a cluster left running.")
