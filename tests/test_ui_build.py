"""The Build panel driven like a person would: set widgets, click Build, wait, read the panels."""

from __future__ import annotations

from html import unescape
from pathlib import Path

import numpy as np

from workbench.backends.registry import availability
from workbench.ui.app import Workbench
from workbench.ui.build_panel import CALIB_FILE, CALIB_IMAGES, CALIB_RANDOM


def build(app: Workbench, **values: object) -> None:
    for name, value in values.items():
        getattr(app.build, name).value = value
    app.build.build_button.click()
    assert app.wait(120), "the build did not finish in two minutes"


def test_build_int8_fills_table_and_progress(cnn: Path) -> None:
    app = Workbench(cnn)
    assert app.results.runs == []
    build(app, precision="int8", repeats=5)
    assert app.build.bar.value == 1.0 and app.build.bar.bar_style == "success"
    assert not app.build.build_button.disabled and app.build.cancel_button.disabled
    assert "int8" in app.build.step.value
    frame = app.results.frame()
    assert list(frame["precision"]) == ["int8"]
    assert "int8 · b1" in app.results.table.value
    assert app.results.error.value == ""
    assert app.tabs.selected_index == 2  # shows the Results tab when a build lands
    logged = app.build.log.value
    assert "calibrate" in logged and "profile" in logged  # one line per step
    assert logged.index("profile") < logged.index("calibrate")  # newest first: no scrolling to see it
    run = app.results.selected()[0]
    assert run.tables.get("layers") and run.tables.get("layer_drift")  # saved with the run
    timing, drift, pareto = (slot.figure for slot in app.results.slots)
    assert timing.layout.xaxis.title.text == "time per batch (ms)"
    assert {t.type for t in timing.data} == {"bar"} and sum(len(t.x) for t in timing.data) > 3
    assert drift.layout.yaxis.title.text.startswith("SQNR") and len(drift.data[0].x) > 3
    assert [t.name for t in pareto.data] == ["int8", "FP32 reference · digits_cnn b1", "Pareto front"]


def test_second_build_compares_layers_side_by_side(cnn: Path) -> None:
    app = Workbench(cnn)
    build(app, precision="fp32", repeats=5)
    fp32_slot = app.results.slots[1]
    assert fp32_slot.figure is None and "FP32 runs match the reference" in fp32_slot.message.value
    build(app, precision="int8", repeats=5)
    assert len(app.results.compare.value) == 2
    timing = app.results.slots[0].figure
    assert sorted(t.name for t in timing.data) == ["fp32 · b1", "int8 · b1"]
    assert app.results.slots[1].figure is not None  # the int8 run's drift, though fp32 is chosen too
    assert {t.name for t in app.results.slots[2].figure.data} >= {"fp32", "int8", "Pareto front"}


def test_button_disabled_while_running_and_second_click_refused(cnn: Path) -> None:
    app = Workbench(cnn)
    app.build.precision.value = "fp16"
    app.build.repeats.value = 200
    app.build.build_button.click()
    assert app.controller.busy  # the click returned while the build still runs: the kernel is free
    assert app.build.build_button.disabled and not app.build.cancel_button.disabled
    thread = app.controller._thread
    app.build._build_clicked(app._start_build)  # a click that slips past the disabled button
    assert app.controller._thread is thread
    assert "already running" in app.build.status.value
    assert app.wait(120)
    assert len(app.results.runs) == 1


def test_cancel_keeps_nothing_and_says_so(cnn: Path) -> None:
    app = Workbench(cnn)
    app.build.precision.value = "int8"
    app.build.repeats.value = 2000
    app.build.build_button.click()
    app.build.cancel_button.click()
    assert app.wait(120)
    assert "cancelled" in app.build.status.value
    assert "cancelled" in app.results.error.value
    # a cancel someone asked for is a note, not an error
    assert "wb-error" not in app.build.status.value + app.results.error.value
    assert app.build.bar.bar_style == "warning" and not app.build.build_button.disabled
    assert app.pipeline.runs() == []


def test_wrong_shaped_calibration_data_is_explained(cnn: Path, tmp_path: Path) -> None:
    bad = tmp_path / "small.npz"
    np.savez(bad, input=np.zeros((8, 1, 14, 14), np.float32))
    app = Workbench(cnn)
    build(app, precision="int8", calib_source=CALIB_FILE, calib_path=str(bad))
    message = unescape(app.results.error.value)
    assert "calibration array 'input' has samples of shape [1, 14, 14]" in message
    assert "What to do:" in message and "Resize or reshape" in message
    assert "14, 14" in app.build.status.value
    assert app.pipeline.runs() == []


def test_earlier_runs_survive_a_failed_build(cnn: Path, tmp_path: Path) -> None:
    app = Workbench(cnn)
    build(app, precision="fp32", repeats=5)
    build(app, precision="int8", calib_source=CALIB_FILE, calib_path=str(tmp_path / "missing.npz"))
    assert "No data at" in app.results.error.value
    assert list(app.results.frame()["precision"]) == ["fp32"]


def test_missing_calibration_path_is_caught_before_building(cnn: Path) -> None:
    app = Workbench(cnn)
    build(app, precision="int8", calib_source=CALIB_FILE, calib_path="  ")
    assert "No calibration path given" in app.build.status.value
    assert app.controller._thread is None


def test_random_calibration_is_labelled(cnn: Path) -> None:
    app = Workbench(cnn)
    build(app, precision="int8", calib_source=CALIB_RANDOM, calib_count=16, repeats=5, profile_layers=False)
    run = app.results.runs[-1]
    assert "RANDOM" in run.calib_source
    assert "layers" not in run.tables


def test_image_folder_calibration_with_preprocessing(cnn: Path) -> None:
    images = cnn.parent / "images"
    app = Workbench(cnn)
    app.build.image_mean.value = "0.5"
    app.build.image_std.value = "0.5"
    build(app, precision="int8", calib_source=CALIB_IMAGES, calib_path=str(images), repeats=5, profile_layers=False)
    assert app.results.error.value == ""
    run = app.results.runs[-1]
    assert run.calib_source and run.calib_source != "calib.npz"
    options = app.build.options()
    assert options.preprocess.mean == (0.5,) and options.preprocess.std == (0.5,)


def test_bad_preprocessing_numbers_are_explained(cnn: Path) -> None:
    app = Workbench(cnn)
    build(app, precision="int8", calib_source=CALIB_IMAGES, calib_path="x", image_mean="zero")
    assert "not a list of numbers" in app.build.status.value


def test_pruning_controls_map_to_pipeline_options() -> None:
    app = Workbench()
    assert app.build.prune_method.value == "none" and app.build.prune_ratio.disabled
    assert app.build.options().prune_method is None
    app.build.prune_method.value = "channel"
    app.build.prune_ratio.value = 0.25
    assert not app.build.prune_ratio.disabled
    assert (app.build.options().prune_method, app.build.options().prune_ratio) == ("channel", 0.25)
    assert "faster on every backend" in app.build.prune_note.value
    app.build.prune_method.value = "magnitude"
    assert "no speed-up" in app.build.prune_note.value
    app.build.prune_method.value = "none"
    assert app.build.prune_note.value == "" and app.build.prune_ratio.disabled


def test_pruned_build_lands_in_the_table(cnn: Path) -> None:
    app = Workbench(cnn)
    app.build.prune_method.value = "magnitude"
    build(app, precision="fp32", prune_ratio=0.5, repeats=5, profile_layers=False)
    assert app.results.error.value == ""
    run = app.results.runs[-1]
    assert run.spec.prune_method == "magnitude" and run.spec.prune_ratio == 0.5


def test_backend_list_shows_only_usable_backends_and_why_not_others() -> None:
    app = Workbench()
    status = availability()
    assert set(app.build.backend.options) == {n for n, s in status.items() if s.available}
    for name, state in status.items():
        if not state.available:
            assert name in app.build.backend_note.value


def test_build_without_a_model_says_what_to_do() -> None:
    app = Workbench()
    app.build.build_button.click()
    assert "Open one in the Model tab" in app.build.status.value


def test_hiding_one_field_hides_no_other() -> None:
    app = Workbench()
    app.build.precision.value = "int8"
    app.build.calib_source.value = CALIB_RANDOM
    assert app.build.calib_path.layout.display == "none"
    for field in (app.build.calib_count, app.build.calib_method, app.build.backend, app.build.batch,
                  app.build.eval_path, app.build.repeats, app.build.prune_ratio):
        assert field.layout.display is None
