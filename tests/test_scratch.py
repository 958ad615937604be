"""Temporary files of a build live in the workspace: another file system, killed and cancelled builds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.errors import Cancelled
from workbench.progress import CancelToken, ProgressEvent
from workbench.runs.pipeline import Pipeline
from workbench.runs.workspace import SCRATCH_DIR

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def system_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private stand-in for the system temp folder, to see whether anything lands there."""
    folder = tmp_path / "system-temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def other_file_system(mount_tmpfs) -> Path:
    """A tmpfs mounted for the test: a workspace on another file system than the temp folder."""
    return mount_tmpfs("tmpfs", "256m")


def test_int8_build_on_another_file_system_than_the_temp_folder(
        other_file_system: Path, system_temp: Path, cnn: Path) -> None:
    assert os.stat(other_file_system).st_dev != os.stat(system_temp).st_dev
    workspace = other_file_system / "workspace"
    run = Pipeline(workspace).run(cnn, BuildOptions("int8", batch=4, repeats=3))
    assert Path(run.artifact).is_file()
    assert list(system_temp.iterdir()) == []  # neither the workbench nor ONNX Runtime's quantizer wrote there
    assert list((workspace / SCRATCH_DIR).iterdir()) == []
    assert tempfile.tempdir == str(system_temp)  # never switched


def test_a_build_killed_during_calibration_leaves_its_files_to_gc(
        tmp_path: Path, workspace: Path, system_temp: Path, cnn: Path, capsys: pytest.CaptureFixture) -> None:
    script = (
        "import os, signal, sys\n"
        "from workbench import BuildOptions, Pipeline\n"
        "def die(event):\n"
        "    if event.step == 'calibrate':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "Pipeline(sys.argv[1]).run(sys.argv[2], BuildOptions('int8', batch=4, repeats=3), progress=die)\n"
    )
    env = {**os.environ, "TMPDIR": str(system_temp), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script, str(workspace), str(cnn)], env=env, timeout=300)
    assert done.returncode == -signal.SIGKILL
    # ONNX Runtime's native library drops a small '.ses' file in the temp folder when imported; no build file.
    assert [p.name for p in system_temp.iterdir() if p.name != ".ses"] == []
    leftovers = list((workspace / SCRATCH_DIR).iterdir())
    assert len(leftovers) == 1 and any(leftovers[0].rglob("*.onnx"))  # ORT's and ours, in the workspace
    assert main(["gc", "--min-age", "0"]) == 0
    assert f"removed {leftovers[0]}" in capsys.readouterr().out and not leftovers[0].exists()


def test_a_build_cancelled_while_timing_keeps_no_variant(workspace: Path, system_temp: Path, cnn: Path) -> None:
    token = CancelToken()

    def cancel_when_timing(event: ProgressEvent) -> None:
        if event.step == "time":
            token.cancel()

    pipeline = Pipeline(workspace)
    with pytest.raises(Cancelled, match="Nothing from it was kept"):
        pipeline.run(cnn, BuildOptions("fp16", batch=4, repeats=3), progress=cancel_when_timing, cancel=token)
    assert list((workspace / "artifacts").iterdir()) == []
    assert pipeline.runs() == []
