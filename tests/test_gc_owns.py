"""gc removes only what the workbench made, never while a build holds it, and builds leave `tempfile` alone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.progress import ProgressEvent
from workbench.runs.pipeline import Pipeline
from workbench.runs.store import missing_files
from workbench.runs.workspace import SCRATCH_DIR, Workspace

HOURS_AGO = time.time() - 3 * 3600


def _old(*paths: Path) -> None:
    for path in paths:
        os.utime(path, (HOURS_AGO, HOURS_AGO))


def test_gc_leaves_a_persons_files_in_the_workspace_alone(workspace: Path, capsys: pytest.CaptureFixture) -> None:
    Workspace(workspace)
    notes = workspace / "tmp" / "my-notes"
    notes.mkdir(parents=True)
    draft, thesis = workspace / "tmp" / "draft.txt", notes / "thesis.txt"
    draft.write_text("draft")
    thesis.write_text("thesis")
    unmarked = workspace / SCRATCH_DIR / "build-999999999-mine"  # named like a build's, but no build marked it
    unmarked.mkdir(parents=True)
    _old(draft, thesis, notes, unmarked)
    assert main(["gc", "--min-age", "0", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "removed" not in out and "nothing to remove" in out
    assert draft.is_file() and thesis.is_file() and unmarked.is_dir()


def test_an_empty_workspace_variable_is_an_error(tmp_path: Path, cli_env: dict[str, str]) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "tmp").mkdir()
    done = subprocess.run([sys.executable, "-m", "workbench", "gc", "--min-age", "0", "--yes"], cwd=folder,
                          env={**cli_env, "WORKBENCH_WORKSPACE": "", "PYTHONPATH": os.getcwd()},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "WORKBENCH_WORKSPACE is set but empty" in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["tmp"]  # no artifacts/, no runs.sqlite


def test_a_folder_of_other_files_is_not_taken_as_a_workspace(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    home = tmp_path / "someone"
    home.mkdir()
    (home / "thesis.txt").write_text("mine")
    assert main(["gc", "--workspace", str(home), "--min-age", "0", "--yes"]) == 2
    assert "is not a workbench workspace" in capsys.readouterr().err
    assert [p.name for p in home.iterdir()] == ["thesis.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["runs", "--workspace", str(empty)]) == 0  # an empty folder, or a new one, is fine


def test_gc_waits_for_a_build_that_is_timing_its_variant(workspace: Path, cnn: Path) -> None:
    """The variant is on disk before its run is saved: gc during the timing must not take it."""
    outcome: dict[str, object] = {}

    def gc_now() -> None:
        outcome["removed"] = Workspace(workspace).gc(min_age_s=0)

    def during_timing(event: ProgressEvent) -> None:
        if event.step == "time" and "gc" not in outcome:
            outcome["gc"] = threading.Thread(target=gc_now)
            outcome["gc"].start()
            time.sleep(1.5)  # gc has had time to remove the unsaved variant, were it not waiting
            outcome["folders"] = [p.name for p in (workspace / "artifacts").iterdir()]

    run = Pipeline(workspace).run(cnn, BuildOptions("fp16", batch=4, repeats=3), progress=during_timing)
    outcome["gc"].join(60)
    assert outcome["folders"] == [Path(run.artifact).parent.name]
    assert outcome["removed"].paths == [] and missing_files(Workspace(workspace).load_run(run.run_id)) == []


def test_a_build_leaves_the_process_temp_folder_alone(workspace: Path, cnn: Path) -> None:
    """A notebook's own temp files, made on another thread during a build, stay out of the build's scratch."""
    seen: dict[str, object] = {}

    def elsewhere() -> None:
        seen["folder"] = tempfile.mkdtemp(prefix="notebook-")

    def during_calibration(event: ProgressEvent) -> None:
        if event.step == "calibrate" and "folder" not in seen:
            seen["tempdir"] = tempfile.tempdir
            other = threading.Thread(target=elsewhere)
            other.start()
            other.join()

    before = tempfile.tempdir
    Pipeline(workspace).run(cnn, BuildOptions("int8", batch=4, repeats=2), progress=during_calibration)
    assert seen["tempdir"] == before
    made = Path(seen["folder"])
    assert made.is_dir() and not made.is_relative_to(workspace)
    made.rmdir()


def test_a_workspace_path_too_long_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    too_long_name = tmp_path / ("a" * 300)
    assert main(["runs", "--workspace", str(too_long_name)]) == 2
    assert "File name too long" in capsys.readouterr().err
    deep = tmp_path.joinpath(*["c" * 200] * 3)  # each name fits; the whole path is past SQLite's limit
    assert main(["runs", "--workspace", str(deep)]) == 2
    assert "more than SQLite opens (512)" in capsys.readouterr().err
