"""A sweep and a tune on one node vs two nodes of one hardware class: wall time, scheduling overhead, bytes
moved, and how many trials a tune finishes within the same time budget.

Each configuration starts its own local Ray cluster (``LocalCluster``: nodes of one CPU each, all
declaring the class ``bench``), runs the same grid (4 precisions x magnitude pruning at 0, 0.25
and 0.5 = 12 cells) into a fresh workspace, and times it end to end. Scheduling overhead is a
task that does nothing, asking for one node of the class like a trial does: one at a time
(round trip) and all at once (throughput). Bytes are what each trial sent to its node (model and
data) and brought back (artifact folder and tables). The tune (``--tune-budget`` seconds, 0 to skip)
searches static INT8, dynamic INT8 and FP16 on ONNX Runtime: with two nodes its independent trials
run side by side, so it finishes more of them within the budget (and uses both nodes).

Nodes of a local cluster share this machine, so their timings are contaminated (every run says
so in its notes); on real machines, start a cluster (README, "Sweeps and tunes on a Ray cluster")
and give ``--address auto --on CLASS``:

    python benchmarks/cluster.py                        # 1 vs 2 local nodes, 12 cells
    python benchmarks/cluster.py --cells 2 --noops 10 --tune-budget 20   # a smoke run
    python benchmarks/cluster.py --address auto --on cpu-amx
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import ray

from workbench.build_options import BuildOptions
from workbench.cluster.local_cluster import LocalCluster
from workbench.cluster.ray_executor import RayExecutor
from workbench.runs.pipeline import Pipeline
from workbench.runs.sweep import Sweep
from workbench.workflows.tune import tune

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"
BENCH_CLASS = "bench"


def _noop() -> None:
    return None


def scheduling_ms(hardware_class: str, count: int, nodes: int) -> tuple[float, float]:
    """Milliseconds per do-nothing task on a node of the class: one at a time, and all submitted at once."""
    task = ray.remote(_noop).options(num_cpus=0, resources={hardware_class: 1})
    ray.get([task.remote() for _ in range(4 * nodes)])  # a warm worker on every node, as later trials find
    start = time.perf_counter()
    for _ in range(count):
        ray.get(task.remote())
    one_by_one = (time.perf_counter() - start) / count * 1e3
    start = time.perf_counter()
    ray.get([task.remote() for _ in range(count)])
    return one_by_one, (time.perf_counter() - start) / count * 1e3


def sweep(model: Path, cells: int, repeats: int) -> Sweep:
    precisions = ("fp32", "fp16", "int8", "int8-dynamic")
    ratios = (0.0, 0.25, 0.5)
    grid = Sweep(str(model), BuildOptions(repeats=repeats, warmup=1), precisions, ("magnitude",), ratios)
    chosen = grid.cells()[:cells]
    return Sweep(str(model), grid.base, list(dict.fromkeys(c.precision for c in chosen)), ("magnitude",),
                 sorted({c.prune_ratio for c in chosen}))


def tuned(grid: Sweep, executor: RayExecutor, root: Path, budget: float) -> dict:
    """A tune of the grid's model on the executor's class: its wall time, trials finished, nodes they ran on."""
    if budget <= 0:
        return {"tune_s": float("nan"), "tune_trials": 0, "tune_nodes": 0}
    start = time.perf_counter()
    result = tune(grid.model, grid.base, backends=["onnxruntime-cpu"], precisions=["int8", "int8-dynamic", "fp16"],
                  time_budget=budget, pipeline=Pipeline(root / "tune"), executor=executor)
    nodes = {(t.run.environment.get("node") or {}).get("name") for t in result.trials}
    return {"tune_s": time.perf_counter() - start, "tune_trials": len(result.trials), "tune_nodes": len(nodes)}


def measure(label: str, address: str, hardware_class: str, grid: Sweep, noops: int, tune_budget: float) -> dict:
    root = Path(tempfile.mkdtemp(prefix="wb-cluster-bench-"))
    executor = RayExecutor(address, [hardware_class], node_workspace=str(root / "nodes"))
    nodes = executor.connect()
    try:
        working = [n for n in nodes if n.alive and hardware_class in n.classes]
        one_by_one, at_once = scheduling_ms(hardware_class, noops, len(working))
        start = time.perf_counter()
        result = grid.run(Pipeline(root / "workspace"), executor=executor)
        wall = time.perf_counter() - start
        searched = tuned(grid, executor, root, tune_budget)
    finally:
        executor.close()
    sent = [t["sent_bytes"] for t in executor.traffic]
    received = [t["received_bytes"] for t in executor.traffic]
    return {"config": label, "nodes": len(working), "cells": len(result.runs) + len(result.failed), "wall_s": wall,
            "noop_ms": one_by_one, "noop_batch_ms": at_once,
            "sent_kib": statistics.fmean(sent) / 1024 if sent else 0.0,
            "received_kib": statistics.fmean(received) / 1024 if received else 0.0,
            "failed": len(result.failed),
            "contaminated": sum(any("CONTAMINATED" in n for n in r.notes) for r in result.runs), **searched}


def local(nodes: int, grid: Sweep, noops: int, tune_budget: float) -> dict:
    cluster = LocalCluster([BENCH_CLASS], nodes_per_class=nodes)
    try:
        return measure(f"local, {nodes} node(s)", cluster.address, BENCH_CLASS, grid, noops, tune_budget)
    finally:
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits_cnn", help="a sample model's folder name, or a path to .onnx")
    parser.add_argument("--cells", type=int, default=12, help="how many of the 12 cells to run (fewer: a smoke run)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--noops", type=int, default=200, help="do-nothing tasks timed for the scheduling overhead")
    parser.add_argument("--address", help="an existing cluster (e.g. auto) instead of local nodes")
    parser.add_argument("--on", default=BENCH_CLASS, help="the hardware class to run on with --address")
    parser.add_argument("--tune-budget", type=float, default=120.0, help="seconds for the tune (0: no tune)")
    args = parser.parse_args()
    model = Path(args.model) if args.model.endswith(".onnx") else SAMPLES / args.model / "model.onnx"
    grid = sweep(model, args.cells, args.repeats)
    rows = ([measure(f"cluster at {args.address}", args.address, args.on, grid, args.noops, args.tune_budget)]
            if args.address else [local(n, grid, args.noops, args.tune_budget) for n in (1, 2)])
    print("| config | nodes | cells | wall s | no-op task ms (one at a time) | no-op task ms (all at once) | "
          "KiB sent per trial | KiB back per trial | failed | runs flagged contaminated | "
          f"tune wall s ({args.tune_budget:g} s budget) | tune trials | tune nodes used |")
    print("|" + "|".join(["---"] * 13) + "|")
    for r in rows:
        print(f"| {r['config']} | {r['nodes']} | {r['cells']} | {r['wall_s']:.1f} | {r['noop_ms']:.2f} | "
              f"{r['noop_batch_ms']:.2f} | {r['sent_kib']:.0f} | {r['received_kib']:.0f} | {r['failed']} | "
              f"{r['contaminated']} | {r['tune_s']:.1f} | {r['tune_trials']} | {r['tune_nodes']} |")


if __name__ == "__main__":
    main()
