"""The Results panel: runs of the open model, persisted across restarts, sortable, compared."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.errors import DataError
from workbench.runs.pipeline import Pipeline
from workbench.ui.app import Workbench


def test_runs_survive_a_restart(cnn: Path) -> None:
    first = Workbench(cnn)
    first.build.precision.value = "fp16"
    first.build.repeats.value = 5
    first.build.build_button.click()
    assert first.wait(120)
    again = Workbench(cnn)  # a new kernel: a fresh app over the same workspace
    assert [r.run_id for r in again.results.runs] == [r.run_id for r in first.results.runs]
    assert "fp16 · b1" in again.results.table.value


def test_table_sorts_and_selection_drives_plots(cnn: Path) -> None:
    pipeline = Pipeline()
    for precision in ("fp32", "fp16", "int8"):
        pipeline.run(cnn, BuildOptions(precision, repeats=5))
    app = Workbench(cnn)
    assert app.results.sort_by.options
    app.results.sort_by.value = "precision"
    app.results.descending.value = True
    table = app.results.table.value
    assert table.index(">int8<") < table.index(">fp32<") < table.index(">fp16<")
    assert len(app.results.compare.value) == 3
    one = app.results.compare.options[0][1]
    app.results.compare.value = (one,)
    assert [r.run_id for r in app.results.selected()] == [one]


def test_runs_of_other_models_are_not_shown(cnn: Path, resnet: Path) -> None:
    Pipeline().run(resnet, BuildOptions("fp32", repeats=3))
    app = Workbench(cnn)
    assert app.results.runs == []
    assert "No runs of this model yet" in app.results.table.value


def test_run_from_code_matches_the_button_and_raises_its_error(cnn: Path, tmp_path: Path) -> None:
    app = Workbench(cnn)
    run = app.run(BuildOptions("int8", repeats=5))
    assert run.tables.get("layers") and run.tables.get("layer_drift")
    assert [r.run_id for r in app.results.runs] == [run.run_id]
    with pytest.raises(DataError, match="No data at"):
        app.run(BuildOptions("int8", calib=str(tmp_path / "missing.npz")))
    assert "No data at" in app.results.error.value
