"""``workbench tune``'s pick beside the tools a user would pick instead, on every model of the real-model zoo.

The peers: OpenVINO BF16 (the FP32 file with its precision hint), NNCF INT8 on OpenVINO's own model with
the defaults its documentation gives (``model_type=TRANSFORMER`` on attention models), NNCF's
``quantize_with_accuracy_control`` (the task metric against FP32 as its validation function, the
task's budget as its largest drop, stopped at ``--time-cap``), and ONNX Runtime's static INT8 with
its defaults (after its own ``quant_pre_process``). Each tool builds in a process of its own, so its
wall time and peak RSS (``ru_maxrss`` by ``os.wait4``) are its own. The evaluation set is split: the
first half is what tune and the accuracy control may choose on, the second half (held back) judges
every variant with the task metric. All variants are then timed in interleaved rounds in one process
against ONNX Runtime FP32 (the yardstick), at one batch.

    python benchmarks/peers.py [--models minilm_l3,...] [--batch 8] [--repeats 30] [--time-cap 600]
                               [--tune-budget 600] [--tools tune,nncf,...] [--workspace DIR]

It prints one table per run and, per model, the ratio "tune's pick / fastest peer that meets the budget".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo

REPO = Path(__file__).resolve().parents[1]
#: Every peer, in table order; ``tune`` is the workbench.
TOOLS = ("tune", "openvino-bf16", "nncf", "nncf-accuracy-control", "ort-int8")
LABELS = {"tune": "tune's pick", "openvino-bf16": "OpenVINO BF16 (hint)",
          "nncf": "NNCF INT8 on OpenVINO, defaults", "nncf-accuracy-control": "NNCF accuracy control on OpenVINO",
          "ort-int8": "ONNX Runtime static INT8, defaults"}


@dataclass
class Built:
    """What one tool made: the file and how to run it, or why there is none; its wall time and peak RSS."""

    tool: str
    artifact: str | None = None
    backend: str = "openvino"
    precision: str = "int8"
    #: How the engine compiles it (tune's BF16+INT8 mix: ``int8_hint=bf16``).
    backend_options: dict[str, str] = field(default_factory=dict)
    verdict: dict[str, str] = field(default_factory=dict)  # tune only: its own search, confirmation and stability
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)
    #: tune only: it answered "keep the unchanged model" (no variant met the budget and paid).
    keeps_fp32: bool = False
    #: tune only: every note of its search, kept in ``--json`` so a pick (or "keep FP32") can be read back.
    search_notes: list[str] = field(default_factory=list)


# --- the tools, each run in a child process ------------------------------------------------------------------


def _items(npz: Path, batch: int = 1) -> list[dict[str, np.ndarray]]:
    data = dict(np.load(npz))
    count = len(next(iter(data.values())))
    return [{k: v[i:i + batch] for k, v in data.items()} for i in range(0, count - batch + 1, batch)]


def _ov_model(model: zoo.ZooModel):
    import openvino as ov

    return ov.Core().read_model(str(model.onnx_path))


def _nncf_options(model: zoo.ZooModel) -> dict:
    import nncf
    import onnx

    from workbench.precision.nncf_int8 import is_transformer

    transformer = is_transformer(onnx.load(str(model.onnx_path), load_external_data=False))
    return {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}


def build_nncf(model: zoo.ZooModel, select: Path, out: Path, args: argparse.Namespace) -> dict:
    import nncf
    import openvino as ov

    quantized = nncf.quantize(_ov_model(model), nncf.Dataset(_items(model.calib_npz)), **_nncf_options(model))
    ov.save_model(quantized, str(out / "nncf.xml"), compress_to_fp16=False)
    how = "model_type=TRANSFORMER" if _nncf_options(model) else "no model type"
    return {"artifact": str(out / "nncf.xml"), "notes": [f"nncf.quantize defaults, {how}"]}


def build_nncf_accuracy_control(model: zoo.ZooModel, select: Path, out: Path, args: argparse.Namespace) -> dict:
    """NNCF's accuracy-aware quantization, validated with the task metric on the search half against FP32."""
    import nncf
    import openvino as ov

    from workbench.backends.registry import get_backend
    from workbench.tasks.judge import Judge, TaskChoice
    from workbench.tasks.registry import get_task

    batches = _items(select, args.batch)
    with get_backend("onnxruntime-cpu").load(model.onnx_path) as fp32:
        references = {id(feed[next(iter(feed))]): fp32.infer(feed) for feed in batches}
    choice = TaskChoice(model.task)

    def validate(compiled, data) -> float:
        judge = Judge(choice)
        for feed in data:
            result = compiled(feed)
            names = {name: np.asarray(value) for port, value in result.items() for name in port.get_names()}
            reference = references[id(feed[next(iter(feed))])]
            judge.update(reference, {name: names[name] for name in reference}, None, feed)
        return float(judge.result()["task"]["value"])

    quantized = nncf.quantize_with_accuracy_control(
        _ov_model(model), nncf.Dataset(_items(model.calib_npz)), nncf.Dataset(batches), validate,
        max_drop=1.0 - get_task(model.task).budget, drop_type=nncf.DropType.ABSOLUTE, **_nncf_options(model))
    ov.save_model(quantized, str(out / "nncf_ac.xml"), compress_to_fp16=False)
    return {"artifact": str(out / "nncf_ac.xml"), "notes": ["quantize_with_accuracy_control, task metric"]}


def build_ort_int8(model: zoo.ZooModel, select: Path, out: Path, args: argparse.Namespace) -> dict:
    """ONNX Runtime's documented path: ``quant_pre_process`` (without symbolic shapes where it fails), then
    ``quantize_static`` with every default."""
    from onnxruntime.quantization import CalibrationDataReader, quant_pre_process, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(_items(model.calib_npz))

        def get_next(self):
            return next(self.items, None)

    prepared = out / "ort_pre.onnx"
    try:
        quant_pre_process(str(model.onnx_path), str(prepared))
    except Exception:  # symbolic shape inference fails on some transformers and detectors
        quant_pre_process(str(model.onnx_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out / "ort_int8.onnx"), Reader())
    return {"artifact": str(out / "ort_int8.onnx"), "backend": "onnxruntime-cpu",
            "notes": ["quant_pre_process + quantize_static defaults"]}


def build_tune(model: zoo.ZooModel, select: Path, out: Path, args: argparse.Namespace) -> dict:
    from workbench.build_options import BuildOptions
    from workbench.tasks.verdict_text import metric_cell
    from workbench.workflows.tune import tune

    options = BuildOptions(calib=str(model.calib_npz), eval=str(select), batch=args.batch, repeats=args.repeats,
                           task=model.task)
    backends = args.tune_backends.split(",") if args.tune_backends else None
    result = tune(model.onnx_path, options, backends=backends, time_budget=args.tune_budget,
                  exclude_unstable=getattr(args, "tune_unstable", None)).to_dict()
    best = result["recommended"]
    if best is None:
        return {"artifact": None, "error": KEEPS_FP32, "keeps_fp32": True, "notes": result["notes"][-3:],
                "search_notes": result["notes"]}
    found = result.get("stability")
    verdict = {"search": metric_cell(best["metric"]),
               "confirm": metric_cell(best["confirm"]["metric"]) if best.get("confirm") else "not confirmed",
               "stability": f"{found['metric']} {found['value']:.4f}, {found['flipped_share']:.1%} flip" if found
               else "n/a"}
    return {"artifact": best["artifact"], "backend": best["backend"], "precision": best["precision"],
            "backend_options": best["backend_options"], "verdict": verdict,
            "notes": [f"{best['recipe'].get('name', '')}, {len(best['kept_nodes'])} nodes kept "
                      f"{(best['backend_options'] or {}).get('int8_hint', 'fp32').upper()}",
                      f"{len(result['trials'])} trials"], "search_notes": result["notes"]}


#: tune's answer where no variant meets the budget: keep the unchanged model (the yardstick, 1.00x).
KEEPS_FP32 = "no variant meets the budget: keep FP32"
#: The option every user has: the unchanged model on ONNX Runtime, the yardstick itself.
UNCHANGED = "ONNX Runtime FP32, unchanged"

BUILDERS = {"tune": build_tune, "nncf": build_nncf, "nncf-accuracy-control": build_nncf_accuracy_control,
            "ort-int8": build_ort_int8}


def child(argv: list[str]) -> None:
    """``--child TOOL MODEL SELECT_NPZ OUT_DIR ARGS_JSON``: build one tool's variant, print what it made as JSON."""
    tool, name, select, out, options = argv
    import contextlib
    import io
    import logging

    logging.getLogger("nncf").setLevel(logging.ERROR)
    args = argparse.Namespace(**json.loads(options))
    with contextlib.redirect_stdout(io.StringIO()):  # progress bars would spoil the JSON
        made = BUILDERS[tool](zoo.get(name), Path(select), Path(out), args)
    json.dump(made, sys.stdout)


def run_child(tool: str, model: zoo.ZooModel, select: Path, out: Path, args: argparse.Namespace,
              env: dict[str, str]) -> Built:
    """One tool in its own process, stopped at ``--time-cap``; its own wall time and peak RSS."""
    built = Built(tool)
    options = json.dumps({k: v for k, v in vars(args).items() if isinstance(v, str | int | float | type(None))})
    cmd = [sys.executable, __file__, "--child", tool, model.name, str(select), str(out), options]
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        # In the output folder: ONNX Runtime's pre-processing leaves temporary files in its working folder.
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env, cwd=out, start_new_session=True)
        cap = args.tune_budget * 1.5 + 60 if tool == "tune" else args.time_cap
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > cap:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                built.error = f"stopped after {cap:.0f} s (time cap)"
                break
            time.sleep(0.5)
        built.wall_s, built.peak_rss_mb = time.perf_counter() - start, usage.ru_maxrss / 1024
        stdout.seek(0)
        stderr.seek(0)
        text, errors = stdout.read(), stderr.read()
    if built.error:
        return built
    if os.waitstatus_to_exitcode(status) != 0:
        built.error = (errors.strip().splitlines() or [f"exit {status}"])[-1][:200]
        return built
    made = json.loads(text)
    built.artifact, built.notes = made.get("artifact"), made.get("notes", [])
    built.backend, built.precision = made.get("backend", "openvino"), made.get("precision", "int8")
    built.backend_options = made.get("backend_options", {})
    built.verdict = made.get("verdict", {})
    built.error = made.get("error", "")
    built.keeps_fp32, built.search_notes = made.get("keeps_fp32", False), made.get("search_notes", [])
    return built


# --- side by side ---------------------------------------------------------------------------------------------


def split_eval(model: zoo.ZooModel, folder: Path) -> tuple[Path, Path]:
    """The evaluation set in two halves: the search may choose on the first, the table judges on the second."""
    data = dict(np.load(model.eval_npz))
    half = len(next(iter(data.values()))) // 2
    paths = folder / "select.npz", folder / "holdout.npz"
    np.savez(paths[0], **{k: v[:half] for k, v in data.items()})
    np.savez(paths[1], **{k: v[half:] for k, v in data.items()})
    return paths


def side_by_side(model: zoo.ZooModel, builts: list[Built], holdout: Path, args: argparse.Namespace) -> list[dict]:
    """Every variant timed in the same interleaved rounds against ONNX Runtime FP32, then judged on held-back
    data by the task metric; one row per tool."""
    from contextlib import ExitStack

    from workbench.backends.registry import get_backend
    from workbench.data.dataset import Dataset
    from workbench.measure.drift import compare_engines
    from workbench.measure.latency import speedup_spread, time_rounds
    from workbench.measure.machine_load import watch_machine_load
    from workbench.runs.pipeline import timing_feed
    from workbench.tasks.judge import TaskChoice

    data = Dataset(dict(np.load(holdout)), None, "held-back half of the evaluation set")
    feed = timing_feed(data, args.batch)
    same = same_models(builts)
    builts_by_tool = {built.tool: built for built in builts}
    with ExitStack() as stack:
        reference = stack.enter_context(get_backend("onnxruntime-cpu").load(model.onnx_path))
        engines = {"reference": reference}
        for built in builts:
            if built.artifact and same[built.tool] == built.tool:
                backend = get_backend(built.backend, built.backend_options).for_precision(built.precision)
                engine = stack.enter_context(backend.load(Path(built.artifact)))
                if runs(engine, feed, built):
                    engines[built.tool] = engine
        # ONNX Runtime's engines are timed in blocks of their own and OpenVINO's call by call, as a run and tune's
        # run-off time them (measure.latency: one runtime's threads still awake take the cores from the next call
        # of another), so a figure of this table and the same variant's figure in tune are taken the same way.
        apart = [tool for tool in engines if tool == "reference" or builts_by_tool[tool].backend.startswith(
            "onnxruntime")]
        with watch_machine_load() as load:
            rounds = time_rounds(engines, feed, warmup=args.warmup, repeats=args.repeats, min_seconds=1.0,
                                 apart=apart)
        ref_ms = float(np.median(rounds["reference"][args.warmup:]))
        rows = []
        for built in builts:
            timed = same.get(built.tool)
            if timed is not None and timed != built.tool:
                built.notes.append(f"the same model as the row '{LABELS[timed]}' (same weights and graph): timed once")
            row = {"tool": built.tool, "built": asdict(built), "fp32_ms": ref_ms, "machine_load": load}
            if timed in engines:
                drift = compare_engines(reference, engines[timed], data, args.batch, TaskChoice(model.task))
                ms = float(np.median(rounds[timed][args.warmup:]))
                row.update(ms=ms, speedup=ref_ms / ms, spread=speedup_spread(rounds["reference"], rounds[timed]),
                           task=drift["task"])
            rows.append(row)
    return rows


def runs(engine, feed: dict, built: Built) -> bool:
    """Whether a tool's variant runs one batch at all: one that was written but fails at its first inference
    (ONNX Runtime's static INT8 of a relative-position encoder) is a row that says so, not a crash of the table."""
    from workbench.messages import library_message

    try:
        engine.infer(feed)
    except Exception as exc:  # the engines raise their own types; the message is the row's
        built.error = f"built, but fails to run: {library_message(exc)[:160]}"
        return False
    return True


def model_identity(built: Built) -> tuple:
    """What makes two variants one model: the engine and how it compiles, the weights' bytes, and the graph
    (for OpenVINO IR without its ``rt_info``, where NNCF records the options it was called with, and without
    the numbers OpenVINO gives the layers it names itself, e.g. ``Constant_184``, which count per process)."""
    import hashlib
    import re

    path = Path(built.artifact)
    graph = path.read_bytes()
    if path.suffix == ".xml":
        graph = re.sub(rb"<rt_info>.*</rt_info>", b"", graph, flags=re.S)
        graph = re.sub(rb'name="([A-Za-z]+)(_\d+)+"', rb'name="\1"', graph)
    weights = path.with_suffix(".bin").read_bytes() if path.suffix == ".xml" else b""
    return (built.backend, built.precision, tuple(sorted(built.backend_options.items())),
            hashlib.sha256(graph).hexdigest(), hashlib.sha256(weights).hexdigest())


def same_models(builts: list[Built]) -> dict[str, str]:
    """Per tool with a variant, the first tool whose variant is the same model: one model has one speed, so
    identical files (tune's pick and a peer's, often) are timed once, not twice with noise between them."""
    first: dict[tuple, str] = {}
    return {b.tool: first.setdefault(model_identity(b), b.tool) for b in builts if b.artifact}


def verdicts(rows: list[dict]) -> tuple[float | None, str]:
    """tune's speed-up over the fastest choice that meets the budget on the held-back data, and that choice. The
    unchanged model (the yardstick, 1.00x) is one: a peer slower than it is no choice, and tune's "keep FP32" is
    that model; a tune pick that misses on the held-back data counts 0."""
    tune = next((r for r in rows if r["tool"] == "tune"), None)
    if tune is None:
        return None, "tune not run"
    met = [r for r in rows if r["tool"] != "tune" and r.get("task", {}).get("met") and r["speedup"] > 1.0]
    fastest = max(met, key=lambda r: r["speedup"], default=None)
    best, label = (fastest["speedup"], LABELS[fastest["tool"]]) if fastest else (1.0, UNCHANGED)
    if tune["built"]["keeps_fp32"]:
        return 1.0 / best, label
    return (tune["speedup"] / best if tune.get("task", {}).get("met") else 0.0), label


def table(results: dict[str, list[dict]]) -> str:
    from workbench.measure.machine_load import load_text
    from workbench.tasks.base import TaskScore
    from workbench.tasks.verdict_text import interval_text, state_flag

    head = ("| model | tool | engine, precision | speed-up vs ORT FP32 (spread) | task metric, held back "
            "| build wall s | peak RSS MB | notes |")
    lines = [head, "|" + "---|" * 8]
    for name, rows in results.items():
        for row in rows:
            built = row["built"]
            if "speedup" in row:
                task = row["task"]
                speed = f"{row['speedup']:.2f}x (±{row['spread']:.2f})"
                score = TaskScore.from_dict(task)
                metric = f"{score.metric} {interval_text(score)} {state_flag(score)}"
            else:
                speed, metric = "n/a", built["error"] or "no variant"
            lines.append(f"| {name} | {LABELS[row['tool']]} | {built['backend']} {built['precision']} | {speed} "
                         f"| {metric} | {built['wall_s']:.0f} | {built['peak_rss_mb']:.0f} "
                         f"| {'; '.join(built['notes'])[:120]} |")
        ratio, peer = verdicts(rows)
        shown = "n/a" if ratio is None else f"{ratio:.2f}"
        lines.append(f"| {name} | **tune's pick / fastest peer meeting the budget ({peer})** | | **{shown}** "
                     f"| | | | FP32 {rows[0]['fp32_ms']:.2f} ms; timed while {load_text(rows[0]['machine_load'])} |")
    return "\n".join(lines)


def tune_verdicts(results: dict[str, list[dict]]) -> str:
    """tune's own account of its pick: the search part's verdict, the confirmation part's, FP32's stability
    (all on the first half; the table above judges on the held-back second half)."""
    lines = ["| model | tune's pick, search part [interval] | confirmation part [interval] | FP32 stability |",
             "|---|---|---|---|"]
    for name, rows in results.items():
        verdict = next((r["built"].get("verdict") for r in rows if r["tool"] == "tune"), None) or {}
        lines.append(f"| {name} | {verdict.get('search', 'n/a')} | {verdict.get('confirm', 'n/a')} "
                     f"| {verdict.get('stability', 'n/a')} |")
    return "\n".join(lines)


def measure(name: str, args: argparse.Namespace, env: dict[str, str], folder: Path) -> list[dict]:
    model = zoo.get(name)
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    select, holdout = split_eval(model, out)
    builts = []
    for tool in args.tools.split(","):
        if tool == "openvino-bf16":
            built = Built(tool, str(model.onnx_path), "openvino", "bf16", notes=["the FP32 file, BF16 hint"])
        else:
            built = run_child(tool, model, select, out, args, env)
        print(f"# {name} {tool}: {built.wall_s:.0f} s, peak RSS {built.peak_rss_mb:.0f} MB {built.error}",
              file=sys.stderr, flush=True)
        builts.append(built)
    return side_by_side(model, builts, holdout, args)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join([*zoo.names(), *zoo.LARGE]),
                        help="comma-separated zoo names (default: all, the BERT-base-size encoder included)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, of {', '.join(TOOLS)}")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (at least 1 s of them)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--time-cap", type=float, default=600.0, help="seconds each peer tool may build for")
    parser.add_argument("--tune-budget", type=float, default=600.0, help="tune's time budget in seconds")
    parser.add_argument("--tune-backends", help="comma-separated backends tune searches (default: all here)")
    unstable = parser.add_mutually_exclusive_group()
    unstable.add_argument("--tune-exclude-unstable", action="store_true", dest="tune_unstable", default=None,
                          help="tune leaves FP32's unstable samples out of its verdicts (the table still judges on "
                          "all; default: tune's own, only where the budget is stricter than FP32's stability)")
    unstable.add_argument("--tune-keep-unstable", action="store_false", dest="tune_unstable",
                          help="tune judges on FP32's unstable samples too")
    parser.add_argument("--workspace", help="folder for the variants and runs (default: a fresh temporary one)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="peers-") as fresh:
        folder = Path(args.workspace or fresh)
        env = {**os.environ, "WORKBENCH_WORKSPACE": str(folder / "workspace"), "WORKBENCH_ZOO": str(zoo.root()),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        results = {name: measure(name.strip(), args, env, folder) for name in args.models.split(",")}
        print(f"batch {args.batch}, {os.cpu_count()} cores, load {Path('/proc/loadavg').read_text().split()[:3]}, "
              f"tool time cap {args.time_cap:g} s, tune budget {args.tune_budget:g} s")
        print(table(results))
        print()
        print(tune_verdicts(results))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
