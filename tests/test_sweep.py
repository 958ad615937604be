"""Sweeps on the real digits_cnn: the grid, the pick within a budget, and resuming after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.errors import DataError
from workbench.runs.pipeline import Pipeline
from workbench.runs.recommend import accuracy_loss, measurably_faster, pick
from workbench.runs.run import Run
from workbench.runs.sweep import Cell, Sweep
from workbench.runs.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def test_grid_has_one_unpruned_cell_per_precision(cnn: Path) -> None:
    sweep = Sweep(str(cnn), BuildOptions(), ["fp32", "int8"], ["channel", "magnitude"], [0, 0.25])
    assert sweep.cells() == [
        Cell("fp32"), Cell("fp32", "channel", 0.25), Cell("fp32", "magnitude", 0.25),
        Cell("int8"), Cell("int8", "channel", 0.25), Cell("int8", "magnitude", 0.25),
    ]
    with pytest.raises(DataError, match="outside"):
        Sweep(str(cnn), BuildOptions(), ["fp32"], ["channel"], [1.0]).cells()
    with pytest.raises(DataError, match="without a pruning method"):
        Sweep(str(cnn), BuildOptions(), ["fp32"], [], [0.5]).cells()
    with pytest.raises(DataError, match="fp6"):
        Sweep(str(cnn), precisions=["fp6"]).cells()


def test_sweep_json_lists_runs_and_a_recommendation_within_budget(cnn: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["sweep", str(cnn), "--precisions", "fp32,fp16,int8", "--batch", "4", "--repeats", "5",
                 "--accuracy-budget", "0.5", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["spec"]["precision"] for r in out["runs"]] == ["fp32", "fp16", "int8"]
    by_id = {r["run_id"]: r for r in out["runs"]}
    # The shared rule: FP32 itself is never the pick, nor a variant slower than FP32 or within its noise
    within = [Run.from_dict(r) for r in out["runs"] if accuracy_loss(r["drift"])[0] <= 0.5]
    best = pick(within)
    assert out["recommended"] == (best.run_id if best else None), out["reason"]
    assert best is None or (measurably_faster(best) and best.spec.precision != "fp32")
    assert best is not None or "keep FP32" in out["reason"]
    assert {"latency_ms", "reference_latency_ms", "drift", "artifact", "spec"} <= set(by_id[out["runs"][0]["run_id"]])
    assert [r.run_id for r in Workspace().runs()] == list(by_id)  # all of them stored
    # FP32 itself is never the pick: its speed-up against FP32 is timing noise; nor is a variant no faster
    within = [r for r in out["runs"] if accuracy_loss(r["drift"])[0] <= 0.5 and r["spec"]["precision"] != "fp32"]
    paying = [r for r in within if Run.from_dict(r).measurably_faster]
    if not paying:  # on a busy machine nothing may be measurably faster: then the answer is FP32
        assert out["recommended"] is None and "keep FP32" in out["reason"], out["reason"]
        return
    best = by_id[out["recommended"]]
    assert best["speedup"] == max(r["speedup"] for r in paying)
    assert {"latency_ms", "reference_latency_ms", "drift", "artifact", "spec"} <= set(best)


def test_without_labels_the_budget_is_judged_on_top1_agreement(cnn: Path) -> None:
    result = Sweep(str(cnn), BuildOptions(eval="random:64", batch=8, repeats=3), precisions=["int8", "fp16"],
                   accuracy_budget=1.0).run()
    assert {accuracy_loss(run.drift)[1] for run in result.runs} == {"top-1 agreement"}
    losses = {run.run_id: accuracy_loss(run.drift)[0] for run in result.runs}
    within = [run for run in result.runs if losses[run.run_id] <= 1.0]
    assert result.recommended is pick(within)
    assert within or "within 1 point of" in result.reason
    assert result.recommended is not None or "keep FP32" in result.reason


def test_killed_sweep_resumes_with_only_the_missing_cells(cnn: Path, workspace: Path) -> None:
    precisions = ["fp32", "fp16", "bf16", "int8", "int8-dynamic"]
    command = [sys.executable, "-m", "workbench", "sweep", str(cnn), "--precisions", ",".join(precisions),
               "--batch", "4", "--repeats", "20", "--workspace", str(workspace)]
    child = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    store = None
    while time.time() < deadline and child.poll() is None:
        if (workspace / "runs.sqlite").exists():
            store = store or Workspace(workspace)
            if store.runs():
                break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)  # the hardest stop: no clean-up code runs
    child.wait()
    done = {run.run_id: (run.created, Path(run.artifact).stat().st_mtime_ns) for run in Workspace(workspace).runs()}
    assert 1 <= len(done) < len(precisions), "the sweep should have been killed half-way"

    built: list[str] = []
    result = Sweep(str(cnn), BuildOptions(batch=4, repeats=20), precisions).run(
        Pipeline(workspace), on_run=lambda run, reused: None if reused else built.append(run.run_id))
    assert [run.spec.precision for run in result.runs] == precisions
    assert sorted(result.reused) == sorted(done)  # finished cells came from the store...
    for run in result.runs:
        if run.run_id in done:  # ...untouched: same record, same artifact file
            assert (run.created, Path(run.artifact).stat().st_mtime_ns) == done[run.run_id]
    assert len(built) == len(precisions) - len(done)  # only the missing ones were computed
    assert len(Workspace(workspace).runs()) == len(precisions)
