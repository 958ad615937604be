"""Where trials run: on this machine (``LocalExecutor``) or on the nodes of a Ray cluster (``RayExecutor``).

Ray is imported only by ``RayExecutor`` and the cluster commands, so a workbench without ``--ray``
never loads it and runs without it installed.
"""

from __future__ import annotations

import importlib

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "TrialOutcome", "cluster_executor", "ray_installed"]

#: Where each public name lives; imported on first use, so ``import workbench.cluster`` costs nothing.
_HOMES = {"Executor": "workbench.runs.executor", "LocalExecutor": "workbench.runs.executor",
          "TrialOutcome": "workbench.runs.executor", "RayExecutor": "workbench.cluster.ray_executor",
          "cluster_executor": "workbench.cluster.choice", "ray_installed": "workbench.cluster.choice"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(name)
