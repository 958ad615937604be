"""GPU benchmark of the CUDA provider options per precision and of FP8, each part one command.

``resnet``: ResNet-50 (torchvision, random weights) FP16 at batch 1 and 32 through ``workbench run
--backend onnxruntime-cuda``, beside ``torch.compile`` (default and reduce-overhead) of the same module
in FP16 channels-last, in the same command; then the kernel profile of the FP16 file under the
options the backend used before (``prefer_nhwc=1``, ``use_tf32=0``) and under today's: the
``cudnn_frontend`` error lines printed while loading, and the elementwise nodes ONNX Runtime's
optimised graph still holds (ReLU, Add: each one a separate kernel).

``encoder``: a BERT-base-sized encoder (transformers, random weights, mean-pooled sentence
embedding, exported by ``scripts/export_hf_encoder.py``), FP32, FP16 and FP8 through ``workbench run``
at batch 1 and 32: latency and the embeddings' cosine against FP32 (the sentence-embedding task's metric).

    python3 benchmarks/cuda_precisions.py resnet --out results/      # on an NVIDIA GPU machine
    python3 benchmarks/cuda_precisions.py encoder --out results/
    python3 benchmarks/cuda_precisions.py resnet --smoke --out /tmp/x  # any machine: sample model, CPU backend

It prints a markdown report and writes it, with JSON, to ``--out``. A failing row is reported in the
table, never hides the others.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # gpu_bench's ResNet-50 export

CUDNN_ERROR = "cudnn_frontend"
ELEMENTWISE = ("Relu", "Add", "Sigmoid", "Mul")
OLD_FP16_OPTIONS = {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0", "prefer_nhwc": "1"}


def log(message: str) -> None:
    print(f"[cuda_precisions {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine()}
    try:
        query = ["nvidia-smi", "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"]
        env["gpu"] = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
        head = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
        env["cuda"] = next((line.split("CUDA Version:")[1].strip(" |") for line in head.splitlines()
                            if "CUDA Version:" in line), None)
    except (OSError, subprocess.SubprocessError):
        env["gpu"] = "none"
    for module in ("onnxruntime", "onnx", "torch", "torchvision", "transformers"):
        try:
            env[module] = __import__(module).__version__
        except ImportError:
            env[module] = "not installed"
    return env


def workbench_run(model: Path, precision: str, batch: int, backend: str, data: dict[str, Path], workspace: Path,
                  repeats: int) -> dict[str, Any]:
    """One ``workbench run --json`` in a child process: the run's fields and the cudnn_frontend lines it printed."""
    cmd = [sys.executable, "-m", "workbench", "run", str(model), "--precision", precision, "--backend", backend,
           "--batch", str(batch), "--repeats", str(repeats), "--eval", str(data["eval"]), "--json"]
    if precision in ("int8", "fp8"):
        cmd += ["--calib", str(data["calib"])]
    env = {**os.environ, "WORKBENCH_WORKSPACE": str(workspace),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    row: dict[str, Any] = {"engine": f"workbench {backend} {precision}", "batch": batch,
                           "cudnn_frontend_lines": done.stderr.count(CUDNN_ERROR)}
    if done.returncode != 0:
        row["error"] = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:300]
        return row
    run = json.loads(done.stdout)
    row.update(median_ms=run["latency_ms"]["median"], fp32_ms=run["reference_latency_ms"]["median"],
               speedup=run["speedup"], cosine=run["drift"].get("cosine_similarity"),
               max_abs=run["drift"].get("max_abs_error"), artifact=run["artifact"],
               notes=[n for n in run["notes"] if any(k in n for k in ("CUDA", "GemmFloat8", "FP8", "speed settings"))])
    return row


# ---------------------------------------------------------------- ResNet-50


def export_resnet(folder: Path, samples: int) -> tuple[Any, Path, dict[str, Path]]:
    """torchvision's ResNet-50 with random weights, exported as ``gpu_bench`` does, and random image data."""
    from gpu_bench import build_torch_resnet50, export_onnx, write_resnet_data

    module = build_torch_resnet50("cuda")
    path = folder / "resnet50.onnx"
    log(export_onnx(module, path, "cuda"))
    calib, evaluation = write_resnet_data(folder, samples, samples)
    return module, path, {"calib": calib, "eval": evaluation}


def torch_compile_rows(module: Any, batches: list[int], repeats: int) -> list[dict[str, Any]]:
    """torch.compile of the FP16 channels-last module, default and reduce-overhead, one compile per batch."""
    import torch

    half = module.half().to(memory_format=torch.channels_last)
    rows = []
    for mode in ("default", "reduce-overhead"):
        for batch in batches:
            torch._dynamo.reset()
            compiled = torch.compile(half, mode=mode)
            x = torch.randn(batch, 3, 224, 224, device="cuda").half().to(memory_format=torch.channels_last)
            start = time.perf_counter()
            with torch.no_grad():
                for _ in range(3):
                    compiled(x)
            torch.cuda.synchronize()
            compile_s = time.perf_counter() - start
            times = []
            with torch.no_grad():
                for _ in range(repeats):
                    begin = torch.cuda.Event(enable_timing=True)
                    end = torch.cuda.Event(enable_timing=True)
                    begin.record()
                    compiled(x)
                    end.record()
                    torch.cuda.synchronize()
                    times.append(begin.elapsed_time(end))
            rows.append({"engine": f"torch.compile {mode}", "batch": batch, "median_ms": float(np.median(times)),
                         "compile_s": compile_s})
            log(f"torch.compile {mode} b{batch}: {rows[-1]['median_ms']:.3f} ms")
    return rows


def session_profile(path: Path, options: dict[str, str], label: str, provider: str) -> dict[str, Any]:
    """Load ``path`` with ``options``: cudnn_frontend lines on stderr while loading and the optimised graph's nodes."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        session_options = ort.SessionOptions()
        session_options.optimized_model_filepath = str(optimized)
        log_file = Path(tmp) / "stderr.txt"
        saved = os.dup(2)
        with log_file.open("w") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                providers = [(provider, options)] if provider != "CPUExecutionProvider" else [provider]
                session = ort.InferenceSession(str(path), session_options, providers=providers)
                shape = [d if isinstance(d, int) else 8 for d in session.get_inputs()[0].shape]
                session.run(None, {session.get_inputs()[0].name: np.zeros(shape, np.float32)})
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        ops = Counter(node.op_type for node in __import__("onnx").load(str(optimized)).graph.node)
        errors = log_file.read_text().count(CUDNN_ERROR)
    return {"options": label, "cudnn_frontend_lines": errors,
            "unfused_elementwise": {op: ops[op] for op in ELEMENTWISE if ops[op]},
            "convolutions": {op: n for op, n in ops.items() if "Conv" in op}}


def resnet(args: argparse.Namespace, report: dict[str, Any]) -> None:
    from workbench.backends.onnxruntime_cuda import OnnxruntimeCudaBackend

    work = Path(tempfile.mkdtemp(prefix="cuda-precisions-"))
    if args.smoke:
        model = REPO / "sample_models" / "digits_resnet" / "model.onnx"
        data = {"eval": model.parent / "eval.npz", "calib": model.parent / "calib.npz"}
        module = None
    else:
        module, model, data = export_resnet(work, args.samples)
    rows = [workbench_run(model, "fp16", batch, args.backend, data, work / "workspace", args.repeats)
            for batch in args.batches]
    for row in rows:
        log(f"{row['engine']} b{row['batch']}: {row.get('median_ms', row.get('error'))}")
    if module is not None:
        rows += torch_compile_rows(module, args.batches, args.repeats)
    report["rows"] = rows
    half = next((row["artifact"] for row in rows if "artifact" in row), None)
    if half is None:
        return
    provider = "CPUExecutionProvider" if args.smoke else "CUDAExecutionProvider"
    new = OnnxruntimeCudaBackend().option_choice(Path(half)).options
    report["profiles"] = [session_profile(Path(half), OLD_FP16_OPTIONS, "before: use_tf32=0, no bias fusion", provider),
                          session_profile(Path(half), new, "after: " + ", ".join(f"{k}={v}" for k, v in new.items()),
                                          provider)]


def cpu_placed(path: Path, provider: str) -> dict[str, int]:
    """The op types ONNX Runtime places on the CPU when ``path`` loads on ``provider``, from its verbose node
    placement log: where there are any, CUDA graphs are refused, so they say what keeps a model launch-bound."""
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.log_severity_level = 0
    with tempfile.TemporaryDirectory() as tmp:
        log_file = Path(tmp) / "stderr.txt"
        saved = os.dup(2)
        with log_file.open("w") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                ort.InferenceSession(str(path), session_options, providers=[provider])
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        placed, on_cpu = Counter(), False
        for line in log_file.read_text(errors="replace").splitlines():
            if "placed on [" in line:
                on_cpu = "placed on [CPUExecutionProvider]" in line and "All nodes" not in line
            elif on_cpu and (node := re.search(r"\]\s+(\w+) \(", line)):
                placed[node.group(1)] += 1
    return dict(placed.most_common())


# ---------------------------------------------------------------- transformer encoder


def export_encoder(folder: Path, samples: int, seq: int) -> tuple[Path, dict[str, Path]]:
    """A BERT-base-sized encoder with random weights, saved as a Hugging Face folder and exported with its mean
    pooling by ``scripts/export_hf_encoder.py`` (as the zoo's encoders are); token ids drawn over the vocabulary."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    BertModel(config).eval().save_pretrained(str(folder / "encoder"))
    path = folder / "encoder.onnx"
    subprocess.run([sys.executable, str(REPO / "scripts" / "export_hf_encoder.py"), str(folder / "encoder"),
                    str(path)], check=True)
    rng = np.random.default_rng(0)
    data = {}
    for name in ("calib", "eval"):
        lengths = rng.integers(seq // 4, seq + 1, samples)
        mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
        data[name] = folder / f"{name}.npz"
        np.savez(data[name], input_ids=rng.integers(1000, config.vocab_size, (samples, seq)) * mask,
                 attention_mask=mask)
    return path, data


def encoder(args: argparse.Namespace, report: dict[str, Any]) -> None:
    work = Path(tempfile.mkdtemp(prefix="cuda-precisions-"))
    if args.smoke:
        model = REPO / "sample_models" / "digits_vit" / "model.onnx"
        data = {"eval": model.parent / "eval.npz", "calib": model.parent / "calib.npz"}
    else:
        model, data = export_encoder(work, args.samples, args.seq)
    rows = []
    for precision in ("fp32", "fp16", "fp8"):
        for batch in args.batches:
            rows.append(workbench_run(model, precision, batch, args.backend, data, work / "workspace", args.repeats))
            log(f"{precision} b{batch}: {rows[-1].get('median_ms', rows[-1].get('error'))}")
    report["rows"] = rows
    provider = "CPUExecutionProvider" if args.smoke else "CUDAExecutionProvider"
    artifacts = {row["engine"]: row["artifact"] for row in rows if "artifact" in row}
    report["cpu_placed"] = {engine: cpu_placed(Path(path), provider) for engine, path in artifacts.items()}


# ---------------------------------------------------------------- report


def fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else "-" if value is None else str(value)


def markdown(report: dict[str, Any]) -> str:
    machine = " | ".join(f"{k}: {v}" for k, v in report["environment"].items())
    lines = [f"## {report['part']}", "", f"| {machine} |", "",
             "| engine | batch | median ms | FP32 ms (same run) | cosine vs FP32 | max abs | cudnn_frontend lines |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in report.get("rows", []):
        if "error" in row:
            lines.append(f"| {row['engine']} | {row['batch']} | failed: {row['error']} | | | | |")
            continue
        lines.append(f"| {row['engine']} | {row['batch']} | {fmt(row.get('median_ms'))} | {fmt(row.get('fp32_ms'))} | "
                     f"{fmt(row.get('cosine'))} | {fmt(row.get('max_abs'))} | {fmt(row.get('cudnn_frontend_lines'))} |")
    for profile in report.get("profiles", []):
        lines += ["", f"- {profile['options']}: {profile['cudnn_frontend_lines']} cudnn_frontend lines on load; "
                      f"unfused elementwise nodes {profile['unfused_elementwise']}; "
                      f"convolutions {profile['convolutions']}"]
    for engine, placed in report.get("cpu_placed", {}).items():
        lines += ["", f"- {engine}: nodes ONNX Runtime places on the CPU {placed or 'none'}"]
    notes = sorted({note for row in report.get("rows", []) for note in row.get("notes", [])})
    lines += ["", "Run notes:", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("resnet", "encoder"))
    parser.add_argument("--out", type=Path, default=Path("cuda-precisions-out"))
    parser.add_argument("--backend", default="onnxruntime-cuda")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--samples", type=int, default=64, help="calibration and evaluation samples each")
    parser.add_argument("--seq", type=int, default=128, help="encoder sequence length")
    parser.add_argument("--smoke", action="store_true", help="sample models on the CPU backend, no torch: a dry run")
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]
    if args.smoke:
        args.backend = "onnxruntime-cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"part": args.part, "environment": environment()}
    (resnet if args.part == "resnet" else encoder)(args, report)
    text = markdown(report)
    (args.out / f"{args.part}.md").write_text(text)
    (args.out / f"{args.part}.json").write_text(json.dumps(report, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
