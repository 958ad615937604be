"""The SQLite run store: migrations, WAL, two writers at once, missing files, delete and gc."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.runs.store import MIGRATIONS, SCHEMA_VERSION, STORE_FILE, RunStore, missing_files
from workbench.runs.workspace import SCRATCH_DIR, Workspace
from workbench.scratch import SCRATCH_MARKER, build_scratch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, cnn_module: Path) -> Run:
    """One real measured run of digits_cnn, to clone under new ids without rebuilding."""
    return Pipeline(tmp_path_factory.mktemp("seed")).run(cnn_module, BuildOptions("fp32", batch=4, repeats=3))


@pytest.fixture(scope="module")
def cnn_module() -> Path:
    path = REPO / "sample_models" / "digits_cnn" / "model.onnx"
    if not path.is_file():
        pytest.skip("sample model digits_cnn is missing")
    return path


def clone(run: Run, suffix: str, workspace: Workspace) -> Run:
    """The same measured run under another id, with its own artifact folder in ``workspace``."""
    folder = workspace.artifact_dir(f"clone-{suffix}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(Path(run.artifact).read_bytes())
    return dataclasses.replace(run, run_id=f"clone-{suffix}", artifact=str(folder / "model.onnx"),
                               created=time.time())


def test_round_trip_keeps_every_field(real_run: Run, workspace: Path) -> None:
    ws = Workspace(workspace)
    run = clone(real_run, "a", ws)
    run.tables["layers"] = str(workspace / "layers.csv")
    ws.save_run(run)
    loaded = Workspace(workspace).load_run(run.run_id)  # a fresh Workspace: it came from the file
    assert loaded.to_dict() == run.to_dict()
    assert loaded.environment["versions"]["onnxruntime"]
    assert ws.load_run("no-such-run") is None


def test_wal_mode_and_schema_version(workspace: Path) -> None:
    store = RunStore(workspace)
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    with sqlite3.connect(workspace / STORE_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "run_tables"} <= tables


def test_json_records_of_an_older_workspace_are_imported_once(real_run: Run, workspace: Path) -> None:
    legacy = workspace / "runs"
    legacy.mkdir(parents=True)
    (legacy / f"{real_run.run_id}.json").write_text(json.dumps(real_run.to_dict()))
    (legacy / "broken.json").write_text("{not json")
    ws = Workspace(workspace)
    assert [r.run_id for r in ws.runs()] == [real_run.run_id]
    assert ws.load_run(real_run.run_id).drift == real_run.drift
    ws.delete_run(real_run.run_id)  # the import is a migration: it does not come back on reopening
    assert Workspace(workspace).runs() == []
    assert (legacy / "broken.json").exists()  # never the step that loses a record


def test_newer_schema_is_refused_clearly(workspace: Path) -> None:
    RunStore(workspace)
    with sqlite3.connect(workspace / STORE_FILE) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(Exception, match="newer than this workbench understands"):
        RunStore(workspace)


WRITER = """
import dataclasses, json, sys, time
from workbench.runs.run import Run
from workbench.scratch import SCRATCH_MARKER, build_scratch
from workbench.runs.workspace import SCRATCH_DIR, Workspace
root, tag, count, template = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
seed = Run.from_dict(json.load(open(template)))
ws = Workspace(root)
print("ready", flush=True)
while not (ws.root / "go").exists():
    time.sleep(0.005)
for i in range(count):
    ws.save_run(dataclasses.replace(seed, run_id=f"{tag}-{i:03d}", created=time.time()))
"""


def test_two_processes_writing_at_once_lose_no_run(real_run: Run, workspace: Path, tmp_path: Path) -> None:
    template = tmp_path / "run.json"
    template.write_text(json.dumps(real_run.to_dict()))
    Workspace(workspace)  # schema created; the writers race on inserts only
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(workspace), tag, "50", str(template)],
                                env=env, stdout=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready"
    (workspace / "go").touch()  # both start inserting at the same moment
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    ids = [run.run_id for run in Workspace(workspace).runs()]
    assert len(ids) == 100
    assert sorted(ids) == sorted(f"{tag}-{i:03d}" for tag in "ab" for i in range(50))


def test_vanished_artifact_is_shown_as_missing(real_run: Run, workspace: Path, capsys: pytest.CaptureFixture) -> None:
    ws = Workspace(workspace)
    run = clone(real_run, "gone", ws)
    run.tables["layers"] = str(workspace / "nowhere.parquet")
    ws.save_run(run)
    Path(run.artifact).unlink()
    loaded = ws.load_run(run.run_id)
    assert missing_files(loaded) == ["artifact", "layers"]
    assert main(["runs"]) == 0
    assert "missing: artifact, layers" in capsys.readouterr().out
    assert main(["show", "clone-g"]) == 0  # a prefix is enough
    assert "MISSING" in capsys.readouterr().out
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["missing"] == ["artifact", "layers"]


def test_delete_keeps_a_shared_artifact_and_gc_removes_orphans(real_run: Run, workspace: Path) -> None:
    ws = Workspace(workspace)
    first = clone(real_run, "one", ws)
    second = dataclasses.replace(first, run_id="clone-two")  # same artifact folder, other batch say
    own = clone(real_run, "own", ws)
    for run in (first, second, own):
        ws.save_run(run)
    assert ws.delete_run("clone-one").paths == []  # clone-two still uses the folder
    assert Path(first.artifact).is_file()
    removed = ws.delete_run("clone-two")
    assert removed.paths == [str(Path(first.artifact).parent)] and not Path(first.artifact).exists()
    assert [r.run_id for r in ws.runs()] == ["clone-own"]

    orphan = ws.artifact_dir("orphan")
    orphan.mkdir()
    (orphan / "model.onnx").write_bytes(b"x" * 1000)
    leftover = Path(own.artifact).parent / "wb-variant-interrupted"
    leftover.mkdir()
    assert ws.gc().paths == []  # young: a build in another process may be writing it
    assert orphan.exists()
    assert main(["gc", "--min-age", "0"]) == 0
    assert not orphan.exists() and not leftover.exists()
    assert Path(own.artifact).is_file()  # a used artifact is never collected
    with pytest.raises(Exception, match="No run 'nothing'"):
        ws.delete_run("nothing")


def test_an_emptied_store_beside_artifacts_is_refused_and_gc_deletes_nothing(
        real_run: Run, workspace: Path, capsys: pytest.CaptureFixture) -> None:
    ws = Workspace(workspace)
    run = clone(real_run, "kept", ws)
    ws.save_run(run)
    orphan_before = ws.artifact_dir("no-run")  # would be collected by a healthy gc
    orphan_before.mkdir()
    store = workspace / STORE_FILE
    for sidecar in ("-wal", "-shm"):
        Path(f"{store}{sidecar}").unlink(missing_ok=True)
    store.write_bytes(b"")  # a crash during a copy, a sync tool
    assert main(["runs"]) == 2
    assert "is empty (0 bytes) while the workspace holds 2 artifact folders" in capsys.readouterr().err
    assert main(["gc", "--min-age", "0", "--yes"]) == 2
    assert Path(run.artifact).is_file() and orphan_before.is_dir() and store.stat().st_size == 0

    store.write_bytes(b"not a database at all")
    assert main(["runs"]) == 2
    assert "not an SQLite file" in capsys.readouterr().err

    store.unlink()  # a lost store: the next one must not take the folders for orphans
    assert main(["gc", "--min-age", "0", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "kept" in out and "before the run store was created" in out and "nothing to remove" in out
    assert Path(run.artifact).is_file() and orphan_before.is_dir()


def test_gc_dry_run_lists_and_keeps(real_run: Run, workspace: Path, capsys: pytest.CaptureFixture) -> None:
    ws = Workspace(workspace)
    ws.save_run(clone(real_run, "used", ws))
    orphan = ws.artifact_dir("orphan")
    orphan.mkdir()
    leftover = workspace / SCRATCH_DIR / "build-999999999-x"  # what a killed build (a pid gone) leaves behind
    leftover.mkdir(parents=True)
    (leftover / SCRATCH_MARKER).write_text(json.dumps({"pid": 999999999, "started": 0}))
    assert main(["gc", "--min-age", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {orphan}" in out and f"would remove {leftover}" in out and "rerun with --yes" in out
    assert orphan.is_dir() and leftover.is_dir()
    assert main(["gc", "--min-age", "0"]) == 0
    assert not orphan.exists() and not leftover.exists()


def test_a_model_path_given_relative_is_found_from_any_folder(
        real_run: Run, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run made from the CLI in the checkout opens in a kernel whose working folder is elsewhere."""
    ws = Workspace(workspace)
    monkeypatch.chdir(REPO)
    ws.save_run(dataclasses.replace(clone(real_run, "rel", ws), model_path="sample_models/digits_cnn/model.onnx"))
    elsewhere = tmp_path / "workbench-notebooks"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = Workspace(workspace).load_run("clone-rel")
    assert Path(loaded.model_path).is_absolute() and Path(loaded.model_path).is_file()
    assert (Path(loaded.model_path).parent / "eval.npz").is_file()


def test_gc_keeps_the_scratch_folder_of_a_build_still_running(workspace: Path) -> None:
    ws = Workspace(workspace)
    with build_scratch(ws.scratch_dir) as running:
        old = time.time() - 10 * 3600  # a long calibration writes nothing for hours
        for path in (running / SCRATCH_MARKER, running):
            os.utime(path, (old, old))
        assert str(running) in ws.gc(min_age_s=0).kept_young and running.is_dir()


def test_gc_removes_caches_only_when_asked(cnn_module: Path, workspace: Path) -> None:
    """An INT8 build on OpenVINO fills both caches; plain gc keeps them, --caches frees them, runs stay."""
    pytest.importorskip("openvino")
    run = Pipeline(workspace).run(cnn_module, BuildOptions("int8", backend="openvino", batch=4, repeats=2))
    cached = [p for name in ("cache", "calibration") for p in (workspace / name).rglob("*") if p.is_file()]
    assert {p.relative_to(workspace).parts[0] for p in cached} == {"cache", "calibration"}
    assert main(["gc", "--min-age", "0", "--yes"]) == 0
    assert all(p.exists() for p in cached)
    assert main(["gc", "--min-age", "0", "--yes", "--caches"]) == 0
    assert not any(p.exists() for p in cached) and Path(run.artifact).is_file()
    again = Pipeline(workspace).run(cnn_module, BuildOptions("int8", backend="openvino", batch=4, repeats=2),
                                    force=True)
    assert again.run_id == run.run_id and Path(again.artifact).is_file()
