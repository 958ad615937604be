"""Where trials run: on this machine (``LocalExecutor``) or on the nodes of a Ray cluster (``RayExecutor``).

Ray is imported only by ``RayExecutor`` and the cluster commands, so a workbench without ``--ray``
never loads it and runs without it installed.
"""

from workbench.runs.executor import Executor, LocalExecutor, TrialOutcome

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "TrialOutcome"]


def __getattr__(name: str):
    if name == "RayExecutor":  # lazily: importing it imports Ray
        from workbench.cluster.ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(name)
