"""A tune on the cluster's side: the search on one node of its class, its trials spread over the class's nodes.

The search runs on one node of the class (it holds that node, as any trial does); with more nodes of
the class, the trials the policy hands over together (the screen's keys, a recipe ladder's rungs, the
fall-back's groups) run side by side: one on this node, the others as Ray tasks on the other nodes,
each timed against its own node's FP32 and stored here with its files, as a sweep's trials are.
"""

from __future__ import annotations

import queue
from pathlib import Path

import ray
from ray.exceptions import RayError, RayTaskError

from workbench.build_options import BuildOptions
from workbench.cluster.node_task import node_pipeline, progress_sender
from workbench.cluster.nodes import cluster_nodes
from workbench.cluster.remote_tasks import failure_reason, remote_trial, trial_asks
from workbench.cluster.shipping import Outbound, inputs_key, option_fields, outbound, receive, run_payload
from workbench.errors import WorkbenchError
from workbench.progress import CancelToken, ProgressCallback
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run

#: The slot of the node the search runs on: its trials run in this process.
HERE = "here"


def class_width(hardware_class: str) -> int:
    """How many live nodes offer ``hardware_class``: how many trials of its search may run at once."""
    return sum(1 for node in cluster_nodes() if node.alive and hardware_class in node.classes)


class NodePool:
    """Builds a trial as ``Pipeline.run`` does, on whichever node of the class is free (this one first)."""

    def __init__(self, pipeline: Pipeline, hardware_class: str, root: str | None, width: int) -> None:
        self.pipeline = pipeline
        self.hardware_class = hardware_class
        self.root = root
        self.width = width
        self._slots: queue.Queue[str] = queue.Queue()
        for slot in [HERE] + [f"remote-{i}" for i in range(1, width)]:
            self._slots.put(slot)
        self._shipped: dict[tuple, ray.ObjectRef] = {}

    def run(self, model: Path, options: BuildOptions, *, cancel: CancelToken | None = None,
            progress: ProgressCallback | None = None) -> Run:
        slot = self._slots.get()
        try:
            if slot == HERE:
                return self.pipeline.run(model, options, cancel=cancel, progress=progress)
            return self._elsewhere(model, options)
        finally:
            self._slots.put(slot)

    def _elsewhere(self, model: Path, options: BuildOptions) -> Run:
        """The trial as a Ray task on another node of the class; its run and files stored here."""
        key = inputs_key(options)
        if key not in self._shipped:  # the model and data once per search, read by every remote trial
            self._shipped[key] = ray.put(outbound(model, options))
        task = remote_trial.options(**trial_asks(self.hardware_class), name=f"tune trial on {self.hardware_class}")
        ref = task.remote(self._shipped[key], option_fields(options), self.hardware_class, self.root, None, 0)
        try:
            payload = ray.get(ref)
        except RayTaskError as exc:
            if isinstance(exc.cause, WorkbenchError):
                raise exc.cause from None  # the node's own refusal, as a build here would raise it
            raise WorkbenchError(failure_reason(exc), "See the node's log; the search goes on without it.") from exc
        except RayError as exc:
            raise WorkbenchError(failure_reason(exc), "See the node's log; the search goes on without it.") from exc
        run, stored = receive(payload, self.pipeline.workspace, model)
        if not stored:
            self.pipeline.workspace.save_run(run)
        return run


def tune_on_node(trip: Outbound, fields: dict, search: dict, hardware_class: str, root: str | None, sink,
                 index: int) -> dict:
    """The body of a tune's Ray task: the search on this node, its independent trials side by side on the
    other nodes of the class where there are any, and every run it made with its files."""
    from workbench.workflows.tune import tune  # the build stack only where a tune runs

    node, pipeline, model, options = node_pipeline(trip, fields, hardware_class, root, sink, index)
    width = class_width(hardware_class)
    pool = NodePool(pipeline, hardware_class, root, width) if width > 1 else None
    result = tune(model, options, pipeline=pipeline, progress=progress_sender(sink, index), pool=pool, **search)
    runs = {trial.run.run_id: trial.run for trial in result.trials}
    runs.update({run.run_id: run for run in result.baselines.values()})
    for run in runs.values():  # a trial built on another node of the class keeps that node's description
        run.environment = {"node": node, **run.environment}
    return {"result": result, "runs": {run_id: run_payload(run) for run_id, run in runs.items()}}
