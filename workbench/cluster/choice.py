"""Which executor a face asked for, decided in one place without importing Ray."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING

from workbench.cluster.local_cluster import LOCAL
from workbench.errors import DataError

if TYPE_CHECKING:
    from workbench.runs.executor import Executor


def ray_installed() -> bool:
    """Whether Ray could be imported, without importing it (it takes seconds and starts threads)."""
    return importlib.util.find_spec("ray") is not None


def cluster_executor(address: str | None, classes: Sequence[str], local_nodes: int = 1) -> Executor | None:
    """The executor a face asked for: None (this machine) without an address, else a RayExecutor.

    Every face (CLI flags, the Sweep tab's fields) goes through here, so they refuse the same mistakes
    with the same words. ``local_nodes`` simulates that many nodes of each class with ``--ray local`` (a tune's
    independent trials then run side by side, as on a real cluster with several machines of one class).
    """
    classes = [c.strip() for c in classes if c.strip()]
    if local_nodes < 1 or (local_nodes > 1 and address != LOCAL):
        raise DataError(f"--local-nodes {local_nodes} does not apply here.",
                        "Give 1 or more, with --ray local only: a real cluster has the nodes its machines start.")
    if not address:
        if classes:
            raise DataError("Hardware classes were named, but no Ray cluster address.",
                            "Give the cluster's address (--ray ADDRESS), or 'local' to try it on this machine.")
        return None
    if not ray_installed():
        raise DataError("Running on a Ray cluster needs Ray, which is not installed.",
                        "pip install 'onnx-workbench[ray]'.")
    if not classes:
        raise DataError("A Ray cluster was given without the hardware classes to run on.",
                        "Name them (--on CLASS[,CLASS]), e.g. cpu-amx.")
    from workbench.cluster.ray_executor import RayExecutor

    return RayExecutor(address, classes, nodes_per_class=local_nodes)


def __getattr__(name: str):
    if name == "RayExecutor":  # lazily: importing it imports Ray
        from workbench.cluster.ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(name)
