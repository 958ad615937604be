"""Trials as Ray tasks: each asks for one unit of its hardware class, i.e. one whole node of that class.

The model and data are put into Ray's object store once and read by every trial; each node builds
and times the variant against its own FP32 reference and sends the run back with its files, which
are stored here as each trial ends. A worker that dies mid-trial is retried by Ray on a node of the
same class; a class whose last node left fails only its own trials; cancelling (Cancel, Ctrl-C)
cancels every remote task still pending or running.
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import ray
from ray.exceptions import RayError, RayTaskError, TaskCancelledError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from workbench.cluster.local_cluster import LOCAL, LocalCluster
from workbench.cluster.node_task import run_trial
from workbench.cluster.nodes import NodeInfo, classes_alive, cluster_nodes, shared_machines
from workbench.cluster.shipping import outbound, payload_size, receive
from workbench.errors import DataError, WorkbenchError
from workbench.progress import CancelToken, ProgressCallback, ProgressEvent
from workbench.runs.executor import Trial, TrialOutcome
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run

#: Times Ray starts a trial again after its worker or node died.
RETRIES = 2
#: How often the wait loop looks at progress, cancellation and nodes that left.
POLL_S = 0.25
NODES_EVERY_S = 2.0


@ray.remote(num_cpus=0)
class _ProgressSink:
    """Collects the trials' progress events; the driver drains it while it waits."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def push(self, *event) -> None:
        self.events.append(event)

    def drain(self) -> list[tuple]:
        events, self.events = self.events, []
        return events


_remote_trial = ray.remote(run_trial)


class RayExecutor:
    """Runs every trial once per class in ``classes`` on a cluster at ``address`` (as ``ray.init`` takes it,
    or ``local`` to start one simulated node per class on this machine).

    ``node_workspace`` is where nodes keep their own workspaces (default: beside the local workspace
    for ``local``, else ``$WORKBENCH_NODE_WORKSPACE`` or ``~/.cache/onnx-workbench/cluster`` on each node).
    """

    def __init__(self, address: str, classes: Sequence[str], *, node_workspace: str | None = None,
                 nodes_per_class: int = 1) -> None:
        self.address = address
        self.targets = list(dict.fromkeys(c.strip() for c in classes if c.strip()))
        if not self.targets:
            raise DataError("No hardware class was named for the cluster.",
                            "Give --on CLASS[,CLASS], e.g. --on cpu-amx.")
        self.node_workspace = node_workspace
        self.nodes_per_class = nodes_per_class
        self.local: LocalCluster | None = None
        self._joined = False
        #: Bytes sent to and received from the nodes, per finished trial (for benchmarks/cluster.py).
        self.traffic: list[dict] = []

    def __enter__(self) -> RayExecutor:
        self.connect()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def connect(self) -> list[NodeInfo]:
        """Join (or, for ``local``, start) the cluster and check it offers every class asked for."""
        if not ray.is_initialized():
            address = self.address
            if address == LOCAL:
                self.local = LocalCluster(self.targets, self.nodes_per_class)
                atexit.register(self.close)
                address = self.local.address
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
                self._joined = True
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise WorkbenchError(f"Cannot connect to the Ray cluster at '{self.address}': {exc}",
                                     "Start it with `ray start --head` (see the README), or use --ray local.") from exc
        nodes = cluster_nodes()
        missing = [c for c in self.targets if c not in classes_alive(nodes)]
        if missing:
            offered = sorted(classes_alive(nodes))
            raise DataError(f"No node of the cluster offers {', '.join(missing)}.",
                            f"Classes offered: {', '.join(offered) or 'none'}; start a node with "
                            f"`ray start --address=... --resources='{{\"{missing[0]}\": 1}}'`.")
        return nodes

    def close(self) -> None:
        """Leave the cluster if this executor joined it, and stop the local one it started."""
        if self._joined and ray.is_initialized():
            ray.shutdown()
        self._joined = False
        if self.local is not None:
            self.local.shutdown()
            self.local = None

    def run_trials(self, model: str, trials: Sequence[Trial], pipeline: Pipeline,
                   progress: ProgressCallback | None = None,
                   cancel: CancelToken | None = None) -> Iterator[TrialOutcome]:
        shared = shared_machines(self.connect())
        root = self.node_workspace or (str((pipeline.workspace.root / "cluster").absolute())
                                       if self.local is not None else None)
        # Beside the driver, so a node that leaves never takes the progress of the others with it.
        sink = _ProgressSink.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=True)).remote()
        jobs: dict[ray.ObjectRef, tuple[int, Trial, str, int]] = {}
        sent: dict[int, int] = {}
        for index, trial in enumerate(trials):
            trip = outbound(Path(model), trial.options)
            shipped = ray.put(trip)
            for hardware_class in self.targets:
                key = len(jobs)
                ref = _remote_trial.options(num_cpus=0, resources={hardware_class: 1}, max_retries=RETRIES,
                                            retry_exceptions=False, name=f"{trial.label} on {hardware_class}"
                                            ).remote(shipped, hardware_class, root, sink, key)
                jobs[ref] = (index, trial, hardware_class, key)
                sent[key] = trip.size
        watch = _Watch(jobs, progress, sink)
        try:
            yield from self._gather(watch, pipeline, Path(model), shared, sent, cancel)
        finally:
            watch.cancel_all()

    def _gather(self, watch: _Watch, pipeline: Pipeline, model: Path, shared: dict[str, list[str]],
                sent: dict[int, int], cancel: CancelToken | None) -> Iterator[TrialOutcome]:
        while watch.pending:
            if cancel is not None and cancel.cancelled:
                watch.cancel_all()
                cancel.raise_if_cancelled()
            ready, _ = ray.wait(list(watch.pending), num_returns=1, timeout=POLL_S)
            watch.forward_progress()
            yield from watch.fail_lost_classes()
            for ref in ready:
                index, trial, hardware_class, key = watch.pending.pop(ref)
                outcome = TrialOutcome(index, trial.label, target=hardware_class)
                try:
                    payload = ray.get(ref)
                except RayError as exc:
                    outcome.error = failure_reason(exc)
                    yield outcome
                    continue
                outcome.run = self._store(payload, pipeline, model, shared)
                self.traffic.append({"trial": outcome.name, "sent_bytes": sent[key],
                                     "received_bytes": payload_size(payload)})
                watch.finished(key)
                yield outcome

    @staticmethod
    def _store(payload: dict, pipeline: Pipeline, model: Path, shared: dict[str, list[str]]) -> Run:
        run, stored = receive(payload, pipeline.workspace, model)
        if stored:
            return run
        node = run.environment.get("node") or {}
        others = shared.get(node.get("node_id"), [])
        if others:
            node["shared_machine_with"] = others
            run.notes.append(f"CONTAMINATED timing: node {node.get('name')} shares its machine with "
                             f"{', '.join(others)}, whose trials ran at the same time")
        pipeline.workspace.save_run(run)
        return run


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


class _Watch:
    """The pending trials: their progress, and the trials of a class no node offers any more."""

    def __init__(self, jobs: dict, progress: ProgressCallback | None, sink) -> None:
        self.pending = dict(jobs)
        self.count = len(jobs)
        self.progress = progress
        self.sink = sink
        self.fractions = {key: 0.0 for _, _, _, key in jobs.values()}
        self.names = {key: f"{trial.label} on {c}" for _, trial, c, key in jobs.values()}
        self.checked = time.monotonic()

    def finished(self, key: int) -> None:
        self.fractions[key] = 1.0

    def forward_progress(self) -> None:
        try:
            events = ray.get(self.sink.drain.remote())
        except RayError:  # the progress went with its node: the trials go on, silently
            return
        for key, step, fraction, message, pid in events:
            self.fractions[key] = max(self.fractions[key], fraction)
            if self.progress is not None:
                text = f"{message} (worker pid {pid})" if step == "start" else message
                self.progress(ProgressEvent(step, sum(self.fractions.values()) / self.count,
                                            f"[{key + 1}/{self.count} {self.names[key]}] {text}"))

    def fail_lost_classes(self) -> Iterator[TrialOutcome]:
        if time.monotonic() - self.checked < NODES_EVERY_S:
            return
        self.checked = time.monotonic()
        alive = classes_alive(cluster_nodes())
        for ref, (index, trial, hardware_class, key) in list(self.pending.items()):
            if hardware_class not in alive:
                ray.cancel(ref, force=True)
                del self.pending[ref]
                self.finished(key)
                yield TrialOutcome(index, trial.label, target=hardware_class,
                                   error=f"no node of class {hardware_class} is left in the cluster: its nodes left "
                                   "before this trial could finish")

    def cancel_all(self) -> None:
        for ref in self.pending:
            ray.cancel(ref, force=True)
        self.pending.clear()
