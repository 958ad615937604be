"""One FP32 reference per model, backend and batch: table latencies and speed-ups never contradict."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from workbench.build_options import BuildOptions
from workbench.runs.frame import runs_frame
from workbench.runs.pipeline import MIN_TIMING_S, Pipeline
from workbench.runs.reference import REFERENCES_FILE


def test_no_row_is_faster_and_less_sped_up_than_another(cnn: Path, workspace: Path) -> None:
    pipeline = Pipeline(workspace)
    runs = [pipeline.run(cnn, BuildOptions(p, repeats=5)) for p in ("fp32", "int8", "int8-dynamic", "fp16")]
    runs.append(pipeline.run(cnn, BuildOptions("int8", batch=4, repeats=5)))
    frame = runs_frame(runs)
    for (_, a), (_, b) in itertools.permutations(frame.iterrows(), 2):
        if (a["model"], a["batch"], a["backend"]) == (b["model"], b["batch"], b["backend"]):
            assert not (a["latency_ms"] < b["latency_ms"] and a["speedup"] < b["speedup"]), (a["label"], b["label"])
    stored = json.loads((workspace / REFERENCES_FILE).read_text())
    assert len(stored) == 2  # batch 1 and batch 4 of one model on one backend
    b1 = [r for r in runs if r.spec.batch == 1]
    assert len({r.shared_reference_ms for r in b1}) == 1
    for run in b1:
        assert abs(run.table_latency_ms["median"] * run.speedup - run.shared_reference_ms) < 1e-9
        # a sub-millisecond model is timed for at least MIN_TIMING_S, far past the 5 repeats asked for
        timed_ms = run.latency_ms["repeats"] * (run.latency_ms["median"] + run.reference_latency_ms["median"])
        assert run.latency_ms["repeats"] > 100 and timed_ms > 0.1 * MIN_TIMING_S * 1000
        assert run.speedup_spread is not None and run.speedup_spread >= 0
