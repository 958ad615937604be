"""The Sweep panel driven like a person would, on the real digits_cnn: grid, live table, reuse, cancel."""

from __future__ import annotations

import threading
from html import unescape
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.errors import Busy, DataError
from workbench.runs.recommend import accuracy_loss, pick
from workbench.ui.app import TABS, Workbench
from workbench.ui.sweep_panel import RECOMMENDED


def sweep(app: Workbench, **values: object) -> None:
    for name, value in values.items():
        getattr(app.sweep_panel, name).value = value
    app.sweep_panel.run_button.click()
    assert app.wait(300), "the sweep did not finish in five minutes"


GRID = {"precisions": ("fp32", "int8"), "prune_methods": ("channel",), "prune_ratios": "0, 0.5", "repeats": 3}


def test_grid_fills_the_table_recommends_and_reaches_results(cnn: Path) -> None:
    app = Workbench(cnn)
    assert TABS[-1] == "Sweep" and app.tabs.children[-1] is app.sweep_panel.widget
    sweep(app, **GRID)
    panel = app.sweep_panel
    frame = panel.frame()
    assert list(frame["variant"]) == ["fp32 · b1", "fp32 · channel 0.5 · b1", "int8 · b1", "int8 · channel 0.5 · b1"]
    assert list(frame["origin"]) == ["built"] * 4
    result = app.last_sweep.result
    # the shared rule decides: a pick only where one is measurably faster, else "keep FP32", said as such
    assert result.recommended is pick([r for r in result.runs if accuracy_loss(r.drift)[0] <= 0.5])
    assert list(frame["note"]).count(RECOMMENDED) == (result.recommended is not None)
    assert (RECOMMENDED in panel.table.value) == (result.recommended is not None)
    assert result.reason in unescape(panel.recommendation.value)
    assert result.recommended is not None or "keep FP32" in result.reason
    assert panel.bar.value == 1.0 and panel.bar.bar_style == "success"
    assert not panel.run_button.disabled and panel.cancel_button.disabled
    assert {r.run_id for r in app.results.runs} == {r.run_id for r in app.last_sweep.result.runs}
    assert "channel" in app.results.table.value


def test_rerunning_reuses_every_cell(cnn: Path) -> None:
    app = Workbench(cnn)
    sweep(app, **GRID)
    first = [r.run_id for r in app.last_sweep.result.runs]
    sweep(app)
    assert list(app.sweep_panel.frame()["origin"]) == ["reused"] * 4
    assert app.last_sweep.result.reused == first
    assert len(app.results.runs) == 4  # nothing new was built


def test_rows_arrive_while_the_sweep_runs(cnn: Path) -> None:
    app = Workbench(cnn)
    seen: list[int] = []
    app.sweep_panel.table.observe(lambda _: seen.append(len(app.sweep_panel.rows)), names="value")
    sweep(app, precisions=("fp32", "fp16"), repeats=3)
    assert [n for n in seen if n][:2] == [1, 2]  # one redraw per finished cell, before the end


@pytest.mark.parametrize("ratios, expected", [
    ("0, half", "not a list of numbers"),
    ("0, 1.5", "outside [0, 1)"),
    ("0.5", "need a pruning method"),
])
def test_bad_ratios_are_explained_and_start_nothing(cnn: Path, ratios: str, expected: str) -> None:
    app = Workbench(cnn)
    sweep(app, prune_ratios=ratios)
    assert expected in unescape(app.sweep_panel.status.value) and "What to do:" in app.sweep_panel.status.value
    assert app.sweeper._thread is None and app.pipeline.runs() == []


def test_nothing_selected_or_no_model_is_explained() -> None:
    app = Workbench()
    sweep(app)
    assert "Open one in the Model tab" in app.sweep_panel.status.value
    sweep(app, precisions=())
    assert "No precision is selected" in app.sweep_panel.status.value
    assert app.sweeper._thread is None


def test_second_click_refused_and_builds_wait_for_sweeps(cnn: Path) -> None:
    app = Workbench(cnn)
    app.sweep_panel.precisions.value = ("fp32", "fp16")
    app.sweep_panel.repeats.value = 300
    app.sweep_panel.run_button.click()
    assert app.sweeper.busy and app.sweep_panel.run_button.disabled and not app.sweep_panel.cancel_button.disabled
    thread = app.sweeper._thread
    app.sweep_panel._run_clicked(app._start_sweep)  # a click that slips past the disabled button
    assert app.sweeper._thread is thread and "already running" in app.sweep_panel.status.value
    app.build.build_button.click()
    assert app.controller._thread is None and "already running" in app.build.status.value
    with pytest.raises(Busy):
        app.sweep(precisions=["fp32"])
    assert app.wait(300)
    assert len(app.sweep_panel.rows) == 2


def test_sweep_refused_while_a_build_runs(cnn: Path) -> None:
    app = Workbench(cnn)
    app.build.precision.value = "fp16"
    app.build.repeats.value = 300
    app.build.build_button.click()
    app.sweep_panel.run_button.click()
    assert app.sweeper._thread is None and "already running" in app.sweep_panel.status.value
    assert app.wait(300)


def test_cancel_stops_and_keeps_finished_cells(cnn: Path) -> None:
    app = Workbench(cnn)
    first_row = threading.Event()
    app.sweep_panel.table.observe(lambda c: c["new"] and (first_row.set(), app.sweeper.cancel()), names="value")
    sweep(app, precisions=("fp32", "fp16", "int8"), repeats=3)
    assert first_row.is_set()
    panel = app.sweep_panel
    assert len(panel.rows) == 1 and "Sweep cancelled" in panel.status.value
    assert panel.bar.bar_style == "danger" and not panel.run_button.disabled
    kept = [r.run_id for r in app.pipeline.runs()]
    assert kept == [panel.rows[0][0].run_id] and [r.run_id for r in app.results.runs] == kept


def test_sweep_from_code_returns_the_result(cnn: Path) -> None:
    app = Workbench(cnn)
    result = app.sweep(BuildOptions(repeats=3), precisions=["fp32", "int8"], accuracy_budget=1.0)
    assert [r.spec.precision for r in result.runs] == ["fp32", "int8"] and result.reason
    assert len(app.sweep_panel.rows) == 2 and len(app.results.runs) == 2
    with pytest.raises(DataError, match="outside"):
        app.sweep(precisions=["fp32"], prune_methods=["channel"], prune_ratios=[1.0])
