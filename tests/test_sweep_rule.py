"""A sweep recommends a variant only when it is measurably faster than FP32; otherwise it says keep FP32."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from conftest import workbench

from workbench.runs.run import Run
from workbench.runs.sweep import recommend


def test_the_vit_sweep_recommends_none_or_a_variant_that_pays(vit: Path, cli_env: dict[str, str]) -> None:
    done = workbench("sweep", str(vit), "--precisions", "fp32,fp16,int8", "--repeats", "5", "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    runs = {run["run_id"]: Run.from_dict(run) for run in result["runs"]}
    if result["recommended"] is None:
        assert "keep FP32" in result["reason"] or "FP32 itself" in result["reason"], result["reason"]
    else:
        best = runs[result["recommended"]]
        assert best.measurably_faster and best.comparable_speedup > 1.0 + (best.speedup_spread or 0)

    # the same runs, each made slower than FP32 or no faster than its noise: never a pick
    variants = [run for run in runs.values() if run.spec.precision != "fp32"]
    slower = [dataclasses.replace(run, speedup=0.83, speedup_vs_baseline=0.83, speedup_spread=0.02) for run in variants]
    noisy = [dataclasses.replace(run, speedup=1.04, speedup_vs_baseline=1.04, speedup_spread=0.06) for run in variants]
    for changed in (slower, noisy):
        best, reason = recommend(changed, 100.0)
        assert best is None and "keep FP32" in reason, reason
    faster = dataclasses.replace(variants[0], speedup=1.5, speedup_vs_baseline=1.5, speedup_spread=0.05)
    best, reason = recommend([*slower, faster], 100.0)
    assert best is faster and "1.50x vs FP32 on onnxruntime-cpu, batch 1" in reason
