"""On a full disk and on a read-only workspace the listing commands work, and gc frees space or says why not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.runs.pipeline import Pipeline


def _fill(folder: Path) -> None:
    """Write zeros until the file system says it is full."""
    block = bytes(1 << 20)
    with open(folder / "filler", "wb") as handle:
        try:
            while True:
                handle.write(block)
                handle.flush()
        except OSError:
            pass


def _lists(run_id: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    report = ["report", run_id, "-o", str(tmp_path / "r.html")]
    for args in (["runs"], ["show", run_id[:8]], ["gc", "--dry-run"], report):
        assert main(args) == 0, capsys.readouterr().err
        assert "error" not in capsys.readouterr().err


def test_listing_and_gc_work_on_a_full_disk_and_a_read_only_workspace(
        mount_tmpfs, tmp_path: Path, cnn: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    point = mount_tmpfs("small", "48m")
    workspace = point / "ws"
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(workspace))
    run = Pipeline(workspace).run(cnn, BuildOptions("fp16", batch=4, repeats=2))
    orphan = workspace / "artifacts" / "orphan"
    orphan.mkdir()
    (orphan / "model.onnx").write_bytes(b"x" * 1000)
    _fill(point)
    _lists(run.run_id, tmp_path, capsys)
    assert main(["gc", "--yes", "--min-age", "0"]) == 0  # the command that frees space runs
    assert f"removed {orphan}" in capsys.readouterr().out and not orphan.exists()

    (point / "filler").unlink()
    remount = subprocess.run(["mount", "-o", "remount,ro", str(point)], capture_output=True, text=True)
    if remount.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs read-only here: {remount.stderr.strip()}")
    _lists(run.run_id, tmp_path, capsys)
    assert main(["gc", "--yes", "--min-age", "0"]) == 2
    assert "read-only or not writable" in capsys.readouterr().err
