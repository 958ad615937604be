"""One build at a time per workspace and one timing at a time per user; timings say if the machine was busy."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.progress import ProgressEvent
from workbench.runs.build_lock import LOCK_FILE
from workbench.runs.pipeline import Pipeline
from workbench.workflows.tune import tune

REPO = Path(__file__).resolve().parents[1]
HOLDER = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from workbench.runs.build_lock import hold\n"
    "with hold(Path(sys.argv[1]), 'a sweep in another terminal'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(float(sys.argv[2]))\n"
)


def holding(path: Path, seconds: float) -> subprocess.Popen:
    """Another process that holds the lock at ``path`` for ``seconds``."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_build_in_the_workspace_refuses_in_one_sentence_after_waiting(
        cnn: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    workspace.mkdir(parents=True)
    holder = holding(workspace / LOCK_FILE, 60)
    try:
        monkeypatch.setenv("WORKBENCH_LOCK_WAIT_S", "1")
        started = time.monotonic()
        assert main(["run", str(cnn), "--batch", "4"]) == 2
        assert time.monotonic() - started >= 1  # it waited before refusing
        err = capfd.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"(process {holder.pid} (a sweep in another terminal, since" in err and "did not start" in err
        assert not (workspace / "artifacts").exists() or list((workspace / "artifacts").iterdir()) == []
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", str(cnn), "--batch", "4", "--repeats", "3"]) == 0  # a killed holder leaves no stale lock


def test_a_second_build_waits_for_the_first_and_says_for_whom(cnn: Path, workspace: Path) -> None:
    workspace.mkdir(parents=True)
    holder = holding(workspace / LOCK_FILE, 1.5)
    messages: list[str] = []

    def record(event: ProgressEvent) -> None:
        if event.step == "wait":
            messages.append(event.message)

    run = Pipeline(workspace).run(cnn, BuildOptions("fp32", batch=4, repeats=3), progress=record)
    holder.wait()
    assert run.latency_ms["median"] > 0
    assert messages and messages[0].startswith(f"waiting for process {holder.pid} (a sweep in another terminal")


def test_timing_takes_the_per_user_lock_that_every_workspace_shares(
        cnn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timing_lock = Path(os.environ["WORKBENCH_TIMING_LOCK"])
    holder = holding(timing_lock, 60)
    try:
        monkeypatch.setenv("WORKBENCH_LOCK_WAIT_S", "1")
        with pytest.raises(Exception, match=r"timing\.lock") as caught:
            Pipeline(tmp_path / "another-workspace").run(cnn, BuildOptions("fp32", batch=4, repeats=3))
        assert "did not finish within 1 s" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()


@contextmanager
def burning() -> Iterator[None]:
    """Every core taken by another process for the block."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_timings_taken_while_the_machine_is_busy_are_flagged(cnn: Path, workspace: Path) -> None:
    with burning():
        run = Pipeline(workspace).run(cnn, BuildOptions("fp32", batch=4, repeats=10))
    load = run.environment["machine_load"]
    assert load["under_load"] and load["other_cpu_share"] > 0.25 and load["cores"] == (os.cpu_count() or 1)
    assert 0.0 <= load["steal_share"] <= 1.0  # the hypervisor's share, counted apart from the burners
    assert any(note.startswith("timed while other processes") and "hypervisor steal" in note for note in run.notes)
    stored = Pipeline(workspace).workspace.load_run(run.run_id)
    assert stored.environment["machine_load"] == load  # kept with the run


def test_a_search_timed_on_a_busy_machine_says_its_pick_may_change(cnn: Path, workspace: Path) -> None:
    with burning():
        result = tune(cnn, BuildOptions(batch=4, repeats=3), backends=["onnxruntime-cpu"], precisions=["int8"],
                      time_budget=20, pipeline=Pipeline(workspace), confirm=False)
    (note,) = [note for note in result.notes if "timed while the machine was not idle" in note]
    # Each trial's own timing window judges it: a trial stopped after a few rounds is too short to read reliably.
    busy = [t for t in result.trials if (t.run.environment.get("machine_load") or {}).get("under_load")]
    assert busy and note.startswith(f"{len(busy)} of {len(result.trials)} trials") and "tune again" in note
