"""One rule picks the run to recommend, for tune and sweep alike: met budget, measurably faster than FP32 on
the comparable ratio (noise test and ranking on that one ratio), the fastest by it; else keep FP32."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.runs.recommend import keep_fp32_reason, measurably_faster, pick, qualifies
from workbench.runs.run import WORTHWHILE, Run
from workbench.runs.spec import RunSpec
from workbench.tasks.base import TaskScore

FORBIDDEN = ("onnxruntime", "openvino", "nncf")


def _run(precision: str, speedup: float, spread: float = 0.01, met: bool = True, backend: str = "onnxruntime-cpu",
         vs_baseline: float | None = None, name: str = "") -> Run:
    spec = RunSpec("m", "m", precision, backend=backend)
    score = TaskScore("classification", "top1_agreement", 0.99 if met else 0.5, 0.98, met, ">= 0.98")
    return Run(name or f"{precision}-{backend}-{speedup}", spec, "", "", {"median": 1.0 / speedup}, {"median": 1.0},
               speedup, {"task": score.to_dict()}, speedup_spread=spread, speedup_vs_baseline=vs_baseline,
               baseline_backend="onnxruntime-cpu" if vs_baseline is not None else None)


def test_a_slower_or_noisy_variant_is_never_recommended_and_keep_fp32_is_an_answer() -> None:
    slower, noisy = _run("fp16", 0.83), _run("int8", 1.01, spread=0.03)
    assert pick([slower, noisy]) is None
    assert keep_fp32_reason([slower, noisy]).startswith("keep FP32: what meets the budget runs no measurably")
    assert keep_fp32_reason([_run("int8", 2.0, met=False)]) == "keep FP32: no variant meets the budget"


def test_the_same_fp32_on_a_faster_engine_is_recommended_by_its_cross_engine_ratio() -> None:
    """OpenVINO's FP32 against its own FP32 is 1.000 (within noise); against ONNX Runtime's it is 1.86x."""
    same_file = _run("fp32", 1.0, spread=0.01, backend="openvino", vs_baseline=1.86)
    assert measurably_faster(same_file) and qualifies(same_file)
    reference = _run("fp32", 1.02, spread=0.01)
    assert not qualifies(reference)  # the reference itself, whatever its noise says
    assert pick([reference, same_file, _run("int8", 1.5)]) is same_file


def test_the_noise_test_uses_the_ranked_ratio() -> None:
    """A variant 1.04x on its engine with a 0.05 spread is noise there; 2.08x across engines, the same relative
    spread (0.10) is far from 1."""
    across = _run("int8", 1.04, spread=0.05, backend="openvino", vs_baseline=2.08)
    assert measurably_faster(across)
    assert not measurably_faster(_run("int8", 1.04, spread=0.05))
    assert pick([across, _run("int8", 1.9, spread=0.01)]) is across


def test_the_interval_decides_and_a_settled_sliver_is_no_speed_up() -> None:
    """Where the run has its speed-up's interval, that decides, not the per-round spread; and its low end must reach
    WORTHWHILE: 1.01x settled to [1.005, 1.015] over thousands of rounds is not worth a changed file."""
    settled = dataclasses.replace(_run("int8", 1.05, spread=0.08), speedup_interval=[1.03, 1.07])
    sliver = dataclasses.replace(_run("int8", 1.01, spread=0.001), speedup_interval=[1.005, 1.015])
    wide = dataclasses.replace(_run("int8", 1.3, spread=0.01), speedup_interval=[0.98, 1.6])
    assert measurably_faster(settled) and not measurably_faster(sliver) and not measurably_faster(wide)
    assert settled.speedup_low == 1.03 and _run("int8", 1.3, spread=0.1).speedup_low == pytest.approx(1.2)
    assert pick([sliver, wide, settled]) is settled
    assert WORTHWHILE == 1.02


def test_missing_the_budget_is_never_recommended_however_fast() -> None:
    assert pick([_run("int8", 3.0, met=False), _run("int8-dynamic", 1.2)]).spec.precision == "int8-dynamic"


def _imported(args: list[str], env: dict[str, str]) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "workbench", *args], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {name.split(".")[0] for name in lines}


def test_the_runs_table_and_the_report_import_no_engine(cnn: Path, tmp_path: Path) -> None:
    from workbench.build_options import BuildOptions
    from workbench.runs.pipeline import Pipeline

    Pipeline(tmp_path / "ws").run(cnn, BuildOptions("int8", batch=8, warmup=0, repeats=2))
    env = {**os.environ, "WORKBENCH_WORKSPACE": str(tmp_path / "ws")}
    runs = _imported(["runs", "--json"], env)
    assert "workbench" in runs and not runs & set(FORBIDDEN), runs & set(FORBIDDEN)
    done = subprocess.run([sys.executable, "-m", "workbench", "runs", "--json"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert len(json.loads(done.stdout)) == 1
    report = _imported(["report", "-o", str(tmp_path / "r.html")], env)
    assert (tmp_path / "r.html").is_file() and not report & set(FORBIDDEN), report & set(FORBIDDEN)
