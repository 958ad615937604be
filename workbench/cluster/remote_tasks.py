"""A trial as a Ray task: what it asks of the cluster, and why it failed when it did.

Shared by a sweep's trials (``ray_executor``) and a tune's trials on the other nodes of its class
(``tune_pool``).
"""

from __future__ import annotations

import ray
from ray.exceptions import RayError, RayTaskError, TaskCancelledError

from workbench.cluster.node_task import run_trial
from workbench.errors import WorkbenchError

#: Times Ray starts a trial again after its worker or node died.
RETRIES = 2

remote_trial = ray.remote(run_trial)


def trial_asks(hardware_class: str) -> dict:
    """What a trial asks of Ray: one unit of its class (the whole node), retried when its worker dies."""
    return {"num_cpus": 0, "resources": {hardware_class: 1}, "max_retries": RETRIES, "retry_exceptions": False}


def failure_reason(exc: RayError) -> str:
    """The trial's own error where it raised one; else what Ray says happened to its worker or node."""
    if isinstance(exc, TaskCancelledError):
        return "cancelled"
    if isinstance(exc, RayTaskError):
        cause = exc.cause
        if isinstance(cause, WorkbenchError):
            return str(cause)
        if cause is not None:
            return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__} after {RETRIES} retries: {first}"
