"""One run, one set of figures: every face prints the speed-up and latency stored with the run."""

from __future__ import annotations

import ast
import io
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import workbench

from workbench.backends.registry import get_backend
from workbench.measure.latency import time_rounds
from workbench.runs import format as fmt
from workbench.runs.frame import verdict
from workbench.runs.workspace import Workspace
from workbench.tasks import task_score
from workbench.ui import figures


def _json(*args: str, env: dict[str, str]) -> object:
    done = workbench(*args, "--json", env=env)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_every_face_prints_the_stored_figures(cnn: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    done = workbench("run", str(cnn), "--precision", "int8", "--repeats", "5", env=cli_env)
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"^run (\w+)", done.stdout, re.M).group(1)
    stored = Workspace(cli_env["WORKBENCH_WORKSPACE"]).load_run(run_id)
    speedup, latency = fmt.times(stored.speedup), fmt.ms(stored.latency_ms["median"])
    interval = fmt.interval_cell(stored.speedup_interval)
    # the printed summary names its reference next to the figure, and how far the figure may be off
    assert interval.startswith("[")
    assert fmt.speedup_text(stored) == f"{speedup} {interval} vs FP32 on onnxruntime-cpu, batch 1"
    assert f"speed-up      {fmt.speedup_text(stored)}" in done.stdout
    assert f"latency       {latency} ms median" in done.stdout
    # without a terminal, progress is written as lines on stderr, never redrawn in place
    assert "[100.0%] done: " in done.stderr and "\r" not in done.stderr

    shown = _json("show", run_id, env=cli_env)
    listed = next(r for r in _json("runs", env=cli_env) if r["run_id"] == run_id)
    rerun = _json("run", str(cnn), "--precision", "int8", "--repeats", "5", env=cli_env)  # served from the store
    for data in (shown, listed, rerun):
        assert fmt.times(data["speedup"]) == speedup and fmt.ms(data["latency_ms"]["median"]) == latency
        assert fmt.interval_cell(data["speedup_interval"]) == interval

    csv = tmp_path / "runs.csv"
    assert workbench("report", run_id, "--csv", str(csv), env=cli_env).returncode == 0
    row = pd.read_csv(csv).set_index("run_id").loc[run_id]
    assert fmt.times(row["speedup"]) == speedup and fmt.ms(row["latency_ms"]) == latency
    assert fmt.times(row["reference_ms"] / row["latency_ms"]) == speedup  # the row's own FP32 explains its figure
    assert fmt.interval_cell(ast.literal_eval(row["speedup_interval"])) == interval

    table = figures.table_frame([stored]).iloc[0]
    assert table["speed-up vs FP32, same engine (×)"] == speedup and table["latency (ms/batch)"] == latency
    assert table["status"] == verdict(task_score(stored.drift))
    assert table["95% interval, of the cross-engine figure where shown (×)"] == interval

    runs_text = workbench("runs", env=cli_env).stdout
    assert speedup in runs_text and latency in runs_text and interval in runs_text


def test_tune_pick_is_the_run_show_prints(cnn: Path, cli_env: dict[str, str]) -> None:
    done = workbench("tune", str(cnn), "--backend", "onnxruntime-cpu", "--precisions", "int8", "--repeats", "3",
                     "--json", env=cli_env)
    result = json.loads(done.stdout)
    # each trial says how many are done (in the screen: of how many planned) and the time budget left
    assert re.search(r"trial 2( of \d+)? \(1 done, \d meet the budget; \d+ s of the 600 s budget left\)",
                     done.stderr)
    # the plain INT8 trial and its compute-only alternative, screened beside it
    assert "] tune: screen trial 1 of 2 (0 done, 0 meet the budget; " in done.stderr
    pick = result["recommended"] or min(result["trials"], key=lambda t: -t["speedup"])
    shown = _json("show", pick["run_id"], env=cli_env)
    assert fmt.times(pick["speedup_same_backend"]) == fmt.times(shown["speedup"])
    assert fmt.times(pick["speedup"]) == fmt.times(shown["speedup_vs_baseline"])
    assert fmt.interval_cell(pick["speedup_interval"]) == fmt.interval_cell(shown["speedup_interval"]) != ""


def test_other_runtime_is_timed_in_its_own_blocks(cnn: Path) -> None:
    """The cross-engine FP32 is never timed call by call between another runtime's calls."""
    data = np.load(cnn.parent / "eval.npz")
    calls: list[str] = []
    engines = {name: get_backend().load(cnn) for name in ("reference", "variant", "baseline")}
    feed = {engines["reference"].input_names[0]: data[next(k for k in data.files if k != "labels")][:1]}
    for name, engine in engines.items():
        timed = engine.time_once
        engine.time_once = lambda f, name=name, timed=timed: (calls.append(name), timed(f))[1]
    rounds = time_rounds(engines, feed, warmup=1, repeats=20, apart=("baseline",))
    timed_calls = calls[3:]
    runs = [len(list(group)) for _, group in itertools.groupby("b" if c == "baseline" else "p" for c in timed_calls)]
    assert min(runs) >= 12  # whole blocks: 12 baseline calls, 12 interleaved reference/variant pairs (24 calls)
    assert len(rounds["reference"]) == len(rounds["variant"]) >= 20 and len(rounds["baseline"]) >= 20
    for engine in engines.values():
        engine.close()


def test_the_bf16_note_forecasts_nothing_the_measurement_could_contradict() -> None:
    """The note beside an OpenVINO BF16 run says what runs it; the speed-up beside it says how fast it was."""
    from workbench.backends.openvino_device import DeviceProfile

    vector_only = DeviceProfile("CPU", "a CPU", frozenset({"FP32", "BF16"}), frozenset({"avx512f", "avx512_bf16"}))
    note = vector_only.how("bf16")
    assert "AVX-512 BF16" in note and "AMX-BF16" in note
    assert not any(word in note for word in ("slow-down", "no gain", "expect"))


def test_per_layer_drift_reports_each_of_its_steps(cnn: Path, workspace: Path) -> None:
    """The app's bar moves through the per-layer drift instead of sitting at its start."""
    from workbench.build_options import BuildOptions
    from workbench.runs.pipeline import Pipeline
    from workbench.workflows.layer_drift import drift_for_run

    pipeline = Pipeline(workspace)
    run = pipeline.run(cnn, BuildOptions("int8", repeats=3))
    events = []
    drift_for_run(run, samples=32, pipeline=pipeline, progress=events.append)
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len({event.message for event in events if 0 < event.fraction < 1}) >= 4


def test_a_log_gets_a_line_for_every_step_over_two_seconds() -> None:
    from workbench.cli.common import LineLog
    from workbench.progress import ProgressEvent

    now = [0.0]
    out = io.StringIO()
    log = LineLog(out, clock=lambda: now[0])
    for at, step, message in [(0.0, "load", "model"), (0.5, "build", "quantizing"), (1.0, "build", "calibrating"),
                              (3.0, "build", "writing"), (4.0, "time", "warm-up"), (19.0, "evaluate", "batch 1"),
                              (19.5, "done", "1.20x")]:
        now[0] = at
        log(ProgressEvent(step, at / 20, message))
    lines = out.getvalue().splitlines()
    assert [line.split("] ")[1].split(":")[0] for line in lines] == ["build", "time", "done"]
    assert lines[1].endswith("warm-up (15 s)")  # a 15 s step that sent nothing more is still logged
