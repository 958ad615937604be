"""Sweeps on a real local Ray cluster: two simulated nodes of one CPU each, classes class-a and class-b.

One cluster serves every test of the module (starting Ray's processes is the slow part). Nothing
is mocked: trials are Ray tasks that build and time real variants of the sample CNN on their node.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.runs_text import format_table
from workbench.errors import Cancelled, DataError, WorkbenchError
from workbench.progress import CancelToken, ProgressEvent
from workbench.report.html import render_report
from workbench.runs.frame import runs_frame
from workbench.runs.pipeline import Pipeline
from workbench.runs.sweep import Sweep
from workbench.workflows.tune import tune

ray = pytest.importorskip("ray")

from workbench.cluster.local_cluster import LocalCluster, machine_load, start_deadline  # noqa: E402
from workbench.cluster.ray_executor import RayExecutor  # noqa: E402

CLASSES = ("class-a", "class-b")
#: A third node, taken out of the cluster by the test of a node that leaves.
LEAVING = "class-c"
#: As few timing rounds as the pipeline allows: these tests check where runs come from, not their speed.
QUICK = BuildOptions(repeats=1, warmup=0)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as env:
        # The nodes' processes inherit these: their timing lock and workspaces are the module's, not the user's.
        env.setenv("WORKBENCH_TIMING_LOCK", str(tmp_path_factory.mktemp("lock") / "timing.lock"))
        env.setenv("WORKBENCH_NODE_WORKSPACE", str(tmp_path_factory.mktemp("nodes")))
        local = LocalCluster((*CLASSES, LEAVING))
        ray.init(address=local.address, log_to_driver=False)
        yield local
        ray.shutdown()
        local.shutdown()


@pytest.fixture
def executor(cluster: LocalCluster, tmp_path: Path) -> RayExecutor:
    return RayExecutor(cluster.address, CLASSES, node_workspace=str(tmp_path / "nodes"))


def test_a_sweep_runs_every_cell_once_on_each_class(cnn: Path, workspace: Path, executor: RayExecutor) -> None:
    pipeline = Pipeline(workspace)
    sweep = Sweep(str(cnn), QUICK, precisions=("fp32", "fp16", "int8", "int8-dynamic"))
    events: list[ProgressEvent] = []
    result = sweep.run(pipeline, progress=events.append, executor=executor)
    assert result.failed == []
    assert sorted((r.spec.hardware_class, r.spec.precision) for r in result.runs) == sorted(
        (c, p) for c in CLASSES for p in ("fp32", "fp16", "int8", "int8-dynamic"))
    for run in result.runs:
        record = run.to_dict()
        assert record["hardware_class"] in CLASSES and record["node"]["name"].startswith(record["hardware_class"])
        assert Path(run.artifact).is_file() and Path(run.artifact).is_relative_to(workspace)
        assert any("CONTAMINATED" in note for note in run.notes)  # both nodes share this machine
    # Two targets' runs of one spec are different runs, each stored here.
    assert len({run.run_id for run in result.runs}) == 8 == len(pipeline.workspace.runs())
    assert set(result.by_target) == set(CLASSES) and result.recommended is None
    assert {e.message.split("]")[0] for e in events if e.step == "start"} >= {f"[1/8 fp32 on {CLASSES[0]}"}
    assert len(executor.traffic) == 8 and all(t["sent_bytes"] > cnn.stat().st_size for t in executor.traffic)
    assert {run.spec.model_name for run in result.runs} == {"digits_cnn"}
    table = format_table(runs_frame(result.runs))
    assert "hardware class" in table.splitlines()[0] and all(c in table for c in CLASSES)
    page = render_report(result.runs)
    assert all(page.count(f"digits_cnn on {c} (") == 1 for c in CLASSES)  # one chart per class, never one across


def test_a_cancelled_sweep_stops_its_tasks_and_resumes_from_the_store(cnn: Path, workspace: Path,
                                                                       executor: RayExecutor) -> None:
    pipeline = Pipeline(workspace)
    sweep = Sweep(str(cnn), QUICK.replace(batch=2), precisions=("fp32", "fp16"))
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        sweep.run(pipeline, cancel=cancel, on_run=lambda run, reused: cancel.cancel(), executor=executor)
    kept = {run.run_id for run in pipeline.workspace.runs()}
    assert 1 <= len(kept) < 4
    deadline = time.monotonic() + 60
    while ray.available_resources().get("class-a", 0) + ray.available_resources().get("class-b", 0) < 2:
        assert time.monotonic() < deadline, "cancelled tasks still hold their nodes"
        time.sleep(0.5)
    result = sweep.run(pipeline, executor=executor)
    assert result.failed == [] and len(result.runs) == 4
    assert kept <= set(result.reused)
    assert len(pipeline.workspace.runs()) == 4


def test_a_tune_spreads_its_trials_over_the_nodes_of_its_class_and_its_runs_come_home(
        cnn: Path, workspace: Path, cluster: LocalCluster, tmp_path: Path) -> None:
    """With two nodes of class-b the screen's two keys run side by side, one on each node; every run comes home."""
    second = cluster.add("class-b")
    try:
        cluster.wait(time.monotonic() + start_deadline(*machine_load()))
        executor = RayExecutor(cluster.address, ["class-b"], node_workspace=str(tmp_path / "nodes"))
        pipeline = Pipeline(workspace)
        result = tune(cnn, BuildOptions(batch=8, repeats=1, warmup=0), backends=["onnxruntime-cpu"],
                      precisions=["int8", "fp16"], time_budget=20, pipeline=pipeline, executor=executor)
    finally:
        cluster.remove(second)
    assert second == "class-b-1"
    runs = [trial.run for trial in result.trials] + list(result.baselines.values())
    assert result.trials and {run.spec.hardware_class for run in runs} == {"class-b"}
    assert {run.environment["node"]["name"] for run in runs} == {"class-b-0", "class-b-1"}
    assert {run.spec.precision for run in runs} >= {"fp32", "int8", "fp16"}
    assert "node" in format_table(runs_frame(runs)).splitlines()[0].split()  # one class, runs from two nodes
    stored = {run.run_id for run in pipeline.workspace.runs()}
    assert {run.run_id for run in runs} <= stored and all(run.artifact_exists for run in runs)
    assert all(Path(run.artifact).is_relative_to(workspace) for run in runs)
    with pytest.raises(WorkbenchError, match="one hardware class"):
        tune(cnn, BuildOptions(), pipeline=pipeline, executor=RayExecutor(cluster.address, CLASSES))


def test_a_worker_killed_mid_trial_is_retried_and_nothing_partial_is_stored(cnn: Path, workspace: Path,
                                                                              cluster: LocalCluster,
                                                                              tmp_path: Path) -> None:
    executor = RayExecutor(cluster.address, ["class-a"], node_workspace=str(tmp_path / "nodes"))
    pipeline = Pipeline(workspace)
    pids: list[int] = []

    def kill_the_first_worker(event: ProgressEvent) -> None:
        if event.step == "start":
            pids.append(int(event.message.rsplit("worker pid ", 1)[1].rstrip(")")))
            if len(pids) == 1:
                os.kill(pids[0], signal.SIGKILL)

    result = Sweep(str(cnn), QUICK.replace(batch=4), precisions=("int8",)).run(
        pipeline, progress=kill_the_first_worker, executor=executor)
    assert result.failed == [] and len(result.runs) == 1
    assert len(set(pids)) >= 2  # started again in a new worker
    stored = pipeline.workspace.runs()
    assert [r.run_id for r in stored] == [result.runs[0].run_id] and stored[0].artifact_exists
    leftovers = [p for p in (workspace / "artifacts").rglob(".tmp-*")]
    assert leftovers == []


def test_a_node_that_leaves_fails_only_its_own_trials(cnn: Path, workspace: Path, cluster: LocalCluster,
                                                      tmp_path: Path) -> None:
    executor = RayExecutor(cluster.address, ["class-a", LEAVING], node_workspace=str(tmp_path / "nodes"))

    def leave_on_start(event: ProgressEvent) -> None:
        if event.step == "start" and f"on {LEAVING}]" in event.message and f"{LEAVING}-0" in cluster.nodes:
            cluster.remove(f"{LEAVING}-0")

    result = Sweep(str(cnn), QUICK.replace(batch=5), precisions=("fp32",)).run(
        Pipeline(workspace), progress=leave_on_start, executor=executor)
    assert [run.spec.hardware_class for run in result.runs] == ["class-a"]
    assert [cell for cell, _ in result.failed] == [f"fp32 on {LEAVING}"]
    assert LEAVING in result.failed[0][1] or "died" in result.failed[0][1].lower()
    assert [run.spec.hardware_class for run in Pipeline(workspace).workspace.runs()] == ["class-a"]


def test_the_sweep_tab_runs_every_cell_on_the_classes_it_names(cnn: Path, cluster: LocalCluster) -> None:
    from workbench.ui.app import Workbench

    app = Workbench(cnn)
    panel = app.sweep_panel
    panel.precisions.value, panel.repeats.value, panel.batch.value = ("fp32",), 3, 6
    panel.ray_classes.value = "class-b"
    panel.run_button.click()
    assert "no Ray cluster address" in unescape(panel.status.value) and app.sweeper._thread is None
    panel.ray_address.value = cluster.address
    panel.run_button.click()
    assert app.wait(300), "the sweep did not finish in five minutes"
    assert [run.spec.hardware_class for run in app.last_sweep.result.runs] == ["class-b"]
    assert list(panel.frame()["hardware class"]) == ["class-b"]
    assert "On class-b: Recommended" in unescape(panel.recommendation.value) or "On class-b: No" in unescape(
        panel.recommendation.value)
    assert ray.is_initialized()  # the tab leaves a cluster it did not start as it was


def test_the_cluster_lists_each_node_with_its_class_and_the_engines_it_runs(
        cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli.main import main
    from workbench.cluster.inventory import inventory

    nodes = {node["name"]: node for node in inventory(cluster.address) if node["alive"]}
    for name in ("class-a-0", "class-b-0"):
        assert nodes[name]["classes"] == [name.rsplit("-", 1)[0]] and nodes[name]["cpus"] == 1
        assert "onnxruntime-cpu" in nodes[name]["engines"]
    assert main(["backends", "--ray", cluster.address, "--json"]) == 0
    offered = json.loads(capsys.readouterr().out)["ray"]
    assert offered["installed"] and offered["classes"]["class-a"] == ["class-a-0"]


def test_a_trial_the_node_refuses_fails_with_the_pipelines_own_words(cnn: Path, workspace: Path,
                                                                      cluster: LocalCluster, tmp_path: Path) -> None:
    executor = RayExecutor(cluster.address, ["class-a"], node_workspace=str(tmp_path / "nodes"))
    result = Sweep(str(cnn), QUICK.replace(batch=16, eval="random:4"), precisions=("fp32",)).run(
        Pipeline(workspace), executor=executor)
    assert result.runs == [] and [cell for cell, _ in result.failed] == ["fp32 on class-a"]
    assert "Batch 16 is larger than the 4 evaluation samples" in result.failed[0][1]
    assert "use --batch 4 or less" in result.failed[0][1]


def test_a_class_no_node_offers_is_refused_with_the_classes_there(cluster: LocalCluster) -> None:
    with pytest.raises(DataError, match="class-z") as refused:
        RayExecutor(cluster.address, ["class-z"]).connect()
    assert "class-a, class-b" in refused.value.fix


def test_several_local_nodes_per_class_are_asked_for_with_ray_local_only(
        cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli.main import main
    from workbench.cluster.choice import cluster_executor

    assert cluster_executor("local", ["class-a"], local_nodes=2).nodes_per_class == 2
    assert main(["tune", str(cnn), "--ray", "auto", "--on", "class-a", "--local-nodes", "2"]) == 2
    assert "--local-nodes 2 does not apply here" in capsys.readouterr().err


def test_ray_is_never_imported_without_ray(cnn: Path, workspace: Path) -> None:
    code = ("import sys; from workbench.cli.main import main; "
            f"main(['sweep', {str(cnn)!r}, '--precisions', 'fp32', '--repeats', '1', '--warmup', '0']); "
            "main(['backends']); assert 'ray' not in sys.modules, 'ray was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "WORKBENCH_WORKSPACE": str(workspace)})
    assert result.returncode == 0, result.stderr
    assert "ray" in result.stdout and "--ray ADDRESS" in result.stdout


def test_the_local_cluster_waits_longer_on_a_busy_machine_and_says_what_to_do_when_it_cannot_start() -> None:
    from workbench.cluster.local_cluster import START_S, start_failed

    assert start_deadline(0.5, 2) == START_S and start_deadline(12.0, 2) == 6 * START_S
    load, cores = machine_load()
    assert start_deadline(load, cores) >= START_S and cores >= 1
    error = start_failed(TimeoutError("Timed out while waiting for nodes to join."), 3, 212.4)
    assert error.problem.startswith("The local Ray cluster did not start in time (3 attempt(s), 212 s; load average ")
    assert error.problem.endswith(f"on {cores} cores): Timed out while waiting for nodes to join.")
    assert "ray start --head --num-cpus=0" in error.fix and "--ray auto" in error.fix and "ray stop" in error.fix
