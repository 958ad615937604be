"""What a run is named after and what it writes: the model's folder as its name, files that follow the umask,
and float64 calibration data kept as its own data (its own digest, its own reproduce command)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.report.reproduce import reproduce_command
from workbench.runs.pipeline import Pipeline


def test_a_model_run_from_inside_its_folder_is_named_after_the_folder(
        cnn: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(cnn.parent)
    assert main(["run", "model.onnx", "--batch", "4", "--repeats", "3", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["spec"]["model_name"] == "digits_cnn"


def test_files_written_by_a_build_follow_the_umask_like_the_model(cnn: Path, workspace: Path) -> None:
    previous = os.umask(0o022)
    try:
        run = Pipeline(workspace).run(cnn, BuildOptions("fp16", batch=4, repeats=3))
    finally:
        os.umask(previous)
    for path in (Path(run.artifact), Path(run.artifact).parent / "build.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_float64_calibration_data_is_its_own_data_and_is_named(cnn: Path, tmp_path: Path) -> None:
    as_float32 = cnn.parent / "calib.npz"
    as_float64 = tmp_path / "calib64.npz"
    with np.load(as_float32) as archive:
        np.savez(as_float64, **{name: archive[name].astype(np.float64) for name in archive.files})
    pipeline = Pipeline()
    first = pipeline.run(cnn, BuildOptions("int8", calib=as_float32, batch=4, repeats=3))
    second = pipeline.run(cnn, BuildOptions("int8", calib=as_float64, batch=4, repeats=3))
    assert second.run_id != first.run_id and second.calib_source == "calib64.npz"
    assert "calibration data converted to the model's types (input: float64 -> float32)" in second.notes
    assert "calib64.npz" in reproduce_command(second) and "calib64.npz" not in reproduce_command(first)
