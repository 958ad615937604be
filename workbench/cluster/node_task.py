"""What a trial does on its node: write the model and data it was sent, build and time the variant
against this node's own FP32 reference, and hand back the run with its files.

Each node keeps its own workspace (``<root>/<class>/<node name>``): a rerun of the same sweep finds
its finished trials there, and two nodes on one machine never wait for each other's build lock.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from workbench.cluster.shipping import Outbound, landed, run_payload
from workbench.progress import ProgressEvent
from workbench.runs.pipeline import Pipeline
from workbench.runs.workspace import Workspace

#: Where a node keeps its workspace when the sweep names none (a cluster of separate machines).
NODE_WORKSPACE_ENV = "WORKBENCH_NODE_WORKSPACE"
#: At most this often a trial's progress is sent home, besides every change of step.
PROGRESS_EVERY_S = 0.5


def node_root(given: str | None) -> Path:
    if given:
        return Path(given)
    return Path(os.environ.get(NODE_WORKSPACE_ENV) or Path.home() / ".cache" / "onnx-workbench" / "cluster")


def this_node(hardware_class: str) -> dict:
    """The node's machine description, stored with the run: timings mean nothing without it."""
    import ray  # only ever imported on a node or by a driver that asked for Ray

    context = ray.get_runtime_context()
    node_id = context.get_node_id()
    info = next((n for n in ray.nodes() if n["NodeID"] == node_id), {})
    return {"node_id": node_id, "name": info.get("NodeName") or socket.gethostname(),
            "hostname": socket.gethostname(), "address": info.get("NodeManagerAddress"),
            "hardware_class": hardware_class, "machine": socket.gethostname(), "pid": os.getpid(),
            "cpus": info.get("Resources", {}).get("CPU"), "gpus": info.get("Resources", {}).get("GPU")}


def progress_sender(sink, index: int) -> Callable[[ProgressEvent], None] | None:
    if sink is None:  # a tune's trial on another node: the search reports its trials itself
        return None
    last = {"step": None, "at": 0.0}

    def send(event: ProgressEvent) -> None:
        now = time.monotonic()
        if event.step != last["step"] or now - last["at"] >= PROGRESS_EVERY_S or event.step == "done":
            sink.push.remote(index, event.step, event.fraction, event.message, os.getpid())
            last.update(step=event.step, at=now)

    return send


def node_pipeline(trip: Outbound, fields: dict, hardware_class: str, root: str | None, sink, index: int):
    """This node's description, pipeline (its own workspace, its runs keyed by class and machine) and inputs."""
    node = this_node(hardware_class)
    workspace = Workspace(node_root(root) / hardware_class / node["name"].replace("/", "_"))
    if sink is not None:
        sink.push.remote(index, "start", 0.0, f"on node {node['name']} ({node['hostname']})", os.getpid())
    model, options = landed(trip, fields, workspace.root / "inputs")
    pipeline = Pipeline(workspace, target={"hardware_class": hardware_class, "machine": node["machine"]})
    return node, pipeline, model, options


def run_trial(trip: Outbound, fields: dict, hardware_class: str, root: str | None, sink, index: int) -> dict:
    """The body of a trial's Ray task: one build on this node; a WorkbenchError travels back as the reason."""
    node, pipeline, model, options = node_pipeline(trip, fields, hardware_class, root, sink, index)
    run = pipeline.run(model, options, progress=progress_sender(sink, index))
    run.environment = {**run.environment, "node": node}
    return run_payload(run)
