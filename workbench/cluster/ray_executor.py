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
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from workbench.build_options import BuildOptions
from workbench.cluster.local_cluster import LOCAL, LocalCluster
from workbench.cluster.nodes import NodeInfo, classes_alive, cluster_nodes, shared_machines
from workbench.cluster.remote_tasks import failure_reason, remote_trial, trial_asks
from workbench.cluster.shipping import inputs_key, option_fields, outbound, payload_size, receive
from workbench.cluster.tune_pool import tune_on_node
from workbench.errors import DataError, WorkbenchError
from workbench.progress import CancelToken, ProgressCallback, ProgressEvent
from workbench.runs.executor import Trial, TrialOutcome
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.workflows.tune_trials import TuneResult

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


_remote_tune = ray.remote(tune_on_node)


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
        shared, root, sink = self._prepare(pipeline)
        jobs: dict[ray.ObjectRef, tuple[int, Trial, str, int]] = {}
        sent: dict[int, int] = {}
        shipments: dict[tuple, tuple[ray.ObjectRef, int]] = {}
        for index, trial in enumerate(trials):
            if inputs_key(trial.options) not in shipments:  # one copy of the model and data for the whole grid
                trip = outbound(Path(model), trial.options)
                shipments[inputs_key(trial.options)] = (ray.put(trip), trip.size)
            shipped, size = shipments[inputs_key(trial.options)]
            for hardware_class in self.targets:
                key = len(jobs)
                ref = remote_trial.options(**trial_asks(hardware_class), name=f"{trial.label} on {hardware_class}"
                                            ).remote(shipped, option_fields(trial.options), hardware_class, root,
                                                     sink, key)
                jobs[ref] = (index, trial, hardware_class, key)
                sent[key] = size
        for (index, trial, hardware_class, key), payload, error in self._gather(jobs, progress, sink, cancel):
            outcome = TrialOutcome(index, trial.label, target=hardware_class, error=error)
            if payload is not None:
                outcome.run = self._store(payload, pipeline, Path(model), shared)
                self.traffic.append({"trial": outcome.name, "sent_bytes": sent[key],
                                     "received_bytes": payload_size(payload)})
            yield outcome

    def run_tune(self, model: str, options: BuildOptions, search: dict, pipeline: Pipeline,
                 progress: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> dict[str, TuneResult | str]:
        """One tune per hardware class, each on one node of its class (its trials run there in turn, timed
        against that node's FP32); every trial's run comes back into the local store. A class whose tune
        failed maps to the reason."""
        shared, root, sink = self._prepare(pipeline)
        shipped = ray.put(outbound(Path(model), options))
        fields = option_fields(options)
        jobs = {_remote_tune.options(**trial_asks(c), name=f"tune on {c}").remote(
            shipped, fields, search, c, root, sink, key): (0, Trial("tune", options), c, key)
            for key, c in enumerate(self.targets)}
        results: dict[str, TuneResult | str] = {}
        for (_, _, hardware_class, _), payload, error in self._gather(jobs, progress, sink, cancel):
            results[hardware_class] = error if payload is None else self._tuned(payload, pipeline, Path(model),
                                                                                  shared)
        return {c: results[c] for c in self.targets}

    def _prepare(self, pipeline: Pipeline) -> tuple[dict[str, list[str]], str | None, object]:
        """The nodes sharing a machine, where nodes keep their workspaces, and the progress sink."""
        shared = shared_machines(self.connect())
        root = self.node_workspace or (str((pipeline.workspace.root / "cluster").absolute())
                                       if self.local is not None else None)
        # Beside the driver, so a node that leaves never takes the progress of the others with it.
        sink = _ProgressSink.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=True)).remote()
        return shared, root, sink

    @staticmethod
    def _gather(jobs: dict, progress: ProgressCallback | None, sink, cancel: CancelToken | None) -> Iterator[tuple]:
        """Each job as it ends: (job, payload, None) or (job, None, reason); cancels what is left on any exit."""
        watch = _Watch(jobs, progress, sink)
        try:
            while watch.pending:
                if cancel is not None and cancel.cancelled:
                    watch.cancel_all()
                    cancel.raise_if_cancelled()
                ready, _ = ray.wait(list(watch.pending), num_returns=1, timeout=POLL_S)
                watch.forward_progress()
                yield from watch.fail_lost_classes()
                for ref in ready:
                    job = watch.pending.pop(ref)
                    watch.finished(job[3])
                    try:
                        payload = ray.get(ref)
                    except RayError as exc:
                        yield job, None, failure_reason(exc)
                        continue
                    yield job, payload, None
        finally:
            watch.cancel_all()
            ray.kill(sink)  # each sweep's own; left alive it would hold a worker process on the cluster

    def _tuned(self, payload: dict, pipeline: Pipeline, model: Path, shared: dict[str, list[str]]) -> TuneResult:
        """The node's tune result with every run it refers to stored here and pointing at the local files."""
        local = {run_id: self._store(run_payload, pipeline, model, shared)
                 for run_id, run_payload in payload["runs"].items()}
        result: TuneResult = payload["result"]
        for trial in result.trials:
            trial.run = local[trial.run.run_id]
        result.baselines = {backend: local[run.run_id] for backend, run in result.baselines.items()}
        return result

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

    def fail_lost_classes(self) -> Iterator[tuple]:
        if time.monotonic() - self.checked < NODES_EVERY_S:
            return
        self.checked = time.monotonic()
        alive = classes_alive(cluster_nodes())
        for ref, job in list(self.pending.items()):
            if job[2] not in alive:
                ray.cancel(ref, force=True)
                del self.pending[ref]
                self.finished(job[3])
                yield job, None, (f"no node of class {job[2]} is left in the cluster: its nodes left before this "
                                  "trial could finish")

    def cancel_all(self) -> None:
        for ref in self.pending:
            ray.cancel(ref, force=True)
        self.pending.clear()
