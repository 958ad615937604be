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
        assert best.measurably_faster and best.speedup_interval[0] > 1.0

    # the same runs, each made slower than FP32 or no faster than its noise: never a pick
    variants = [run for run in runs.values() if run.spec.precision != "fp32"]
    # (by the interval of the speed-up, and for runs stored without one by its spread)
    def changed(speedup: float, interval: list[float] | None, spread: float) -> list[Run]:
        return [dataclasses.replace(run, speedup=speedup, speedup_vs_baseline=speedup, speedup_spread=spread,
                                    speedup_interval=interval) for run in variants]

    slower = changed(0.83, [0.81, 0.85], 0.02)
    # (too small to be worth a changed file, however settled: 1.01x over thousands of rounds)
    sliver = changed(1.01, [1.005, 1.015], 0)
    for never in (slower, changed(1.04, [0.99, 1.08], 0.01), changed(1.04, None, 0.06), sliver):
        best, reason = recommend(never, 100.0)
        assert best is None and "keep FP32" in reason, reason
    assert "1.01x [1.00, 1.01] vs FP32 on onnxruntime-cpu, batch 1, at least 1.00x, under the 1.02x that pays" in \
        recommend(sliver, 100.0)[1]
    # a spread wider than the distance from 1 does not matter where the interval settles the figure above 1
    settled = changed(1.04, [1.03, 1.06], 0.06)[0]
    assert recommend([settled], 100.0)[0] is settled
    faster = dataclasses.replace(variants[0], speedup=1.5, speedup_vs_baseline=1.5, speedup_spread=0.05,
                                 speedup_interval=[1.45, 1.55])
    best, reason = recommend([*slower, faster], 100.0)
    assert best is faster and "1.50x [1.45, 1.55] vs FP32 on onnxruntime-cpu, batch 1" in reason
