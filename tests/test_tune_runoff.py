"""The run-off: tune's fastest passing trials timed again side by side, their stored runs carrying the figures
the pick is made on, so every face shows one number."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import sample

from workbench.build_options import BuildOptions
from workbench.runs.pipeline import Pipeline
from workbench.workflows.tune import tune
from workbench.workflows.tune_runoff import RUNOFF_MAX, RUNOFF_NOTE, finalists, within_memory

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'onnx-workbench[openvino]')")


def test_the_fastest_passing_trials_are_timed_again_side_by_side_and_stored(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path / "ws")
    result = tune(sample("digits_resnet"), BuildOptions(batch=8, repeats=5), backends=["onnxruntime-cpu", "openvino"],
                  precisions=["bf16", "int8"], time_budget=40, pipeline=pipeline, confirm=False)
    passing = [t for t in result.trials if t.pays]
    chosen = [t for t in result.trials if any(note.startswith(RUNOFF_NOTE) for note in t.run.notes)]
    assert len({t.run.run_id for t in passing}) >= 2, result.explain()
    assert 2 <= len({t.run.run_id for t in chosen}) <= 2 * RUNOFF_MAX + 1
    for trial in chosen:  # what the pick may give way to was timed in the same rounds
        plain = [t for t in passing if t.run.artifact == trial.run.artifact and not t.recipe.backend_options]
        assert not trial.recipe.backend_options or not plain or plain[0].run.run_id in {c.run.run_id for c in chosen}
    (note,) = [n for n in result.notes if n.startswith(f"run-off of the {len({t.run.run_id for t in chosen})} fastest")]
    assert "its trial read" in note and "against FP32 on onnxruntime-cpu" in note
    slowest_finalist = min(t.speedup for t in chosen)
    for trial in chosen:  # the stored run is the figure: reloaded, it is the one the pick was made on
        stored = pipeline.workspace.load_run(trial.run.run_id)
        assert stored.comparable_speedup == pytest.approx(trial.speedup)
        assert stored.speedup == pytest.approx(stored.reference_latency_ms["median"] / stored.latency_ms["median"])
        assert "steal_share" in stored.environment["machine_load"]
    best = result.recommended
    assert best is not None and best.run.run_id in {t.run.run_id for t in chosen}
    assert best.speedup >= slowest_finalist


def test_finalists_are_the_fastest_passing_trials_one_per_stored_run(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = Pipeline(tmp_path / "ws")
    result = tune(sample("digits_resnet"), BuildOptions(batch=8, repeats=3), backends=["onnxruntime-cpu"],
                  precisions=["int8"], time_budget=20, pipeline=pipeline, confirm=False)
    doubled = result.trials + result.trials  # a trial reached twice is one stored run: timed once
    chosen = finalists(doubled)
    assert len(chosen) == min(RUNOFF_MAX, len({t.run.run_id for t in result.trials}))
    assert [t.speedup for t in chosen] == sorted((t.speedup for t in chosen), reverse=True)
    left = [t.speedup for t in result.trials if t.run.run_id not in {c.run.run_id for c in chosen}]
    assert all(s <= min(t.speedup for t in chosen) for s in left)
    # Only the finalists that fit in memory beside the FP32 engines are timed again, the fastest first.
    monkeypatch.setenv("WORKBENCH_MEMORY_GB", "64")
    assert within_memory(chosen) == (chosen, [])
    monkeypatch.setenv("WORKBENCH_MEMORY_GB", "0.01")  # less than this process holds already: none fits
    assert within_memory(chosen) == ([], chosen)
