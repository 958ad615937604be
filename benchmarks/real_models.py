"""Real pretrained models, as a new user would try them: FP32, plain INT8, and ``workbench tune``'s pick.

For every model of the zoo (``benchmarks/zoo.py``) it prints the FP32 latency, plain INT8's speed-up and
task metric, the tuned variant's speed-up and task metric, the search's wall time, and the peak RSS of
each step. Each step is a ``workbench`` command in its own process, and its peak RSS is that child's own
``ru_maxrss`` (``os.wait4``), so one step's memory never hides another's. Batch 8 by default; ONNX Runtime
uses its default thread count (one per core: 2 on the development machine).

With ``--quarter`` every search judges on a quarter of the evaluation data: where that is too few
samples to show the budget, the table says "cannot tell" instead of a pass or a miss. Every tune
search confirms its pick on the half of the (quartered) data it did not search on; the table shows
both figures with their intervals (at ``--confidence``, 95% by default), and FP32's own stability on the
data. With ``--search-samples N`` each search judges its trials on N samples and spends the rest of its
part only on trials whose interval straddles the budget; the table says how many extra samples went to
how many trials.

    python benchmarks/real_models.py [--models a,b] [--batch 8] [--time-budget 600] [--workspace DIR] [--quarter]
        [--confidence 0.95] [--search-samples N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo

from workbench.tasks.verdict_text import metric_cell

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Step:
    """One child process: what it printed on stdout (parsed as JSON when it is), its wall time and peak RSS."""

    name: str
    wall_s: float
    peak_rss_mb: float
    status: int
    result: dict | None = None
    error: str = ""


@dataclass
class Row:
    model: str
    task: str
    steps: list[Step] = field(default_factory=list)


def run_step(name: str, cmd: list[str], env: dict[str, str], json_out: bool = True) -> Step:
    """Run ``cmd`` and read that child's own resource usage when it ends."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    step = Step(name, wall, usage.ru_maxrss / 1024, child.returncode)
    try:
        step.result = json.loads(text) if json_out and text.strip() else None
    except json.JSONDecodeError:
        step.error = "stdout was not JSON"
    if child.returncode != 0:
        lines = [line for line in errors.splitlines() if line.startswith("error:")] or errors.splitlines()[-1:]
        step.error = lines[-1] if lines else f"exit {child.returncode}"
    return step


def _metric(drift: dict) -> str:
    task = drift.get("task") or {}
    if not task:
        return "n/a"
    mark = "" if task.get("met", True) else " (misses)"
    return f"{task.get('metric', task.get('name', '?'))} {task.get('value', float('nan')):.3f}{mark}"


def measure(name: str, args: argparse.Namespace, env: dict[str, str]) -> Row:
    python = [sys.executable]
    prepare = run_step("prepare", [*python, str(Path(__file__).parent / "zoo.py"), name], env, json_out=False)
    model = zoo.get(name) if prepare.status == 0 else None
    row = Row(name, model.task if model else "?", [prepare])
    if model is None:
        return row
    data = ["--calib", str(model.calib_npz), "--eval", str(model.eval_npz), "--batch", str(args.batch),
            "--task", model.task, "--json"]
    row.steps.append(run_step("int8", [*python, "-m", "workbench", "run", str(model.onnx_path), "--precision", "int8",
                                       "--repeats", str(args.repeats), *data], env))
    backends = ["--backend", args.backend] if args.backend else []
    row.steps.append(run_step("tune", [*python, __file__, "--tune-child", str(model.onnx_path), *backends,
                                       "--time-budget", str(args.time_budget), "--repeats",
                                       str(args.repeats), *data, *(["--quarter"] if args.quarter else []),
                                       "--confidence", str(args.confidence),
                                       *(["--search-samples", str(args.search_samples)] if args.search_samples
                                         else [])], env))
    return row


def tune_child(argv: list[str]) -> None:
    """The search through its Python API (``workflows.tune.tune``), printing its JSON like ``workbench tune``."""
    parser = argparse.ArgumentParser()
    for flag in ("--calib", "--eval", "--task", "--backend"):
        parser.add_argument(flag)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--time-budget", type=float)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quarter", action="store_true")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--search-samples", type=int)
    parser.add_argument("model")
    args = parser.parse_args(argv)
    from workbench.build_options import BuildOptions
    from workbench.data.loaders import load_npz
    from workbench.workflows.tune import tune

    evaluation = args.eval
    if args.quarter:
        whole = load_npz(args.eval)
        evaluation = whole.take(max(4, len(whole) // 4))
        evaluation.source = f"the first quarter of {whole.source}"
    options = BuildOptions(calib=args.calib, eval=evaluation, batch=args.batch, repeats=args.repeats, task=args.task,
                           confidence=args.confidence)
    backends = [args.backend] if args.backend else None
    result = tune(args.model, options, backends=backends, time_budget=args.time_budget,
                  search_samples=args.search_samples)
    json.dump(result.to_dict(), sys.stdout, default=str)


def table(rows: list[Row], confidence: float = 0.95) -> str:
    level = f"{confidence:.0%}"
    head = ("| model | task | FP32 ms | INT8 speed-up | INT8 metric | tuned speed-up | tuned metric, search part "
            f"[{level} interval] | confirmation part [{level} interval] | FP32 stability "
            "| tuned engine, precision (recipe), kept FP32 | search s (trials) | extra samples (trials they went to) "
            "| peak RSS MB (prepare / int8 / tune) |")
    lines = [head, "|" + "---|" * 13]
    for row in rows:
        steps = {s.name: s for s in row.steps}
        plain, tuned = steps.get("int8"), steps.get("tune")
        fp32 = speed = metric = t_speed = t_metric = t_what = wall = confirm = stability = extra = "n/a"
        if plain and plain.result:
            run = plain.result
            fp32 = f"{run['reference_latency_ms']['median']:.1f}"
            speed, metric = f"{run['speedup']:.2f}x", _metric(run["drift"])
        elif plain:
            speed = f"failed: {plain.error}"
        if tuned and tuned.result:
            best = tuned.result.get("recommended")
            wall = f"{tuned.result.get('wall_s', tuned.wall_s):.0f} ({len(tuned.result.get('trials', []))})"
            spent = [t.get("extra_samples", 0) for t in tuned.result.get("trials", [])]
            extra = f"{sum(spent)} ({sum(1 for n in spent if n)})"
            found = tuned.result.get("stability")
            stability = f"{found['metric']} {found['value']:.4f}, {found['flipped_share']:.1%} flip" if found else "n/a"
            if best:
                m = best["metric"]
                t_speed = f"{best['speedup']:.2f}x"
                t_metric = f"{m.get('name', '?')} {metric_cell(m)}"
                confirm = metric_cell(best["confirm"]["metric"]) if best.get("confirm") else "not confirmed"
                t_what = (f"{best['backend']} {best['precision']} ({best['recipe'].get('name', '')}), "
                          f"{len(best['kept_nodes'])} nodes")
            else:
                t_speed = "none meets the budget"
        elif tuned:
            t_speed = f"failed: {tuned.error}"
        rss = " / ".join(f"{steps[n].peak_rss_mb:.0f}" if n in steps else "-" for n in ("prepare", "int8", "tune"))
        lines.append(f"| {row.model} | {row.task} | {fp32} | {speed} | {metric} | {t_speed} | {t_metric} | {confirm} "
                     f"| {stability} | {t_what} | {wall} | {extra} | {rss} |")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--tune-child"]:
        return tune_child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(zoo.names()), help="comma-separated zoo names")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--time-budget", type=float, default=600.0, help="seconds for each tune search")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per build")
    parser.add_argument("--backend", help="search only this backend (default: every one that runs here; plain "
                        "INT8 always runs on the default backend)")
    parser.add_argument("--workspace", help="workspace for the runs (default: a fresh temporary one)")
    parser.add_argument("--quarter", action="store_true", help="judge every search on a quarter of the evaluation "
                        "data: 'cannot tell' wherever that is too little to show the budget")
    parser.add_argument("--confidence", type=float, default=0.95, help="level of every interval and verdict")
    parser.add_argument("--search-samples", type=int, help="judge each trial on this many search samples, the rest "
                        "only for trials whose interval straddles the budget")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="real-models-") as fresh:
        env = {**os.environ, "WORKBENCH_WORKSPACE": args.workspace or fresh,
               "WORKBENCH_ZOO": str(zoo.root()), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
                   "PYTHONPATH", "")])}
        rows = []
        for name in args.models.split(","):
            row = measure(name.strip(), args, env)
            rows.append(row)
            for step in row.steps:
                print(f"# {row.model} {step.name}: {step.wall_s:.0f} s, peak RSS {step.peak_rss_mb:.0f} MB"
                      + (f", {step.error}" if step.error else ""), file=sys.stderr, flush=True)
        print(f"batch {args.batch}, tune backends {args.backend or 'all that run here'}, {os.cpu_count()} cores, "
              f"tune time budget {args.time_budget:g} s"
              + (", every search on a quarter of the evaluation data" if args.quarter else ""))
        print(table(rows, args.confidence))


if __name__ == "__main__":
    main()
