"""GPU benchmark: the workbench's ONNX Runtime CUDA backend against FP32 and against PyTorch eager.

One command measures everything side by side on the machine it runs on:

1. exports a ResNet-50 with random weights (BatchNorm statistics set by a few training-mode
   passes, so activations have realistic ranges) with the PyTorch installed there;
2. builds FP16, BF16 and INT8 variants, and channel-pruned (0.5) FP32 and FP16 ones, of the samples
   and of ResNet-50 through the workbench pipeline
   (``Pipeline.run``) at batch 1 and 32, each timed in interleaved rounds against its FP32
   reference (TF32 off) on the same backend, with drift on the same evaluation inputs;
3. times PyTorch eager on the same ResNet-50 and batches (FP32 with TF32 off, FP16 autocast,
   FP16 ``.half()`` channels-last), synchronising the device around every timed call, and
   ``torch.compile`` of the FP16 channels-last model (default and max-autotune modes, compile
   time reported), the GPU peer a user would reach for instead of the workbench;
4. compares CUDA provider options on ResNet-50 at batch 32 (``prefer_nhwc``, cuDNN algorithm
   search) and CUDA graphs on and off at every batch, and checks how much of the end-to-end time
   ORT's per-node profiler accounts for;
5. records the GPU kernels of one run of the workbench's FP16 engine and of each ``torch.compile``
   mode with PyTorch's profiler (CUPTI sees every kernel in the process, ORT's included): kernel
   time, kernel count and the idle time between kernels, which is where the engines differ.

It prints a markdown report and writes it (plus JSON) to ``--out``, rewritten after every section.
Every section catches its own failure and reports it in the table, so one broken step never hides
the others' figures.

    python3 benchmarks/gpu_bench.py --out results/             # on a GPU machine
    python3 benchmarks/gpu_bench.py --backend onnxruntime-cpu --batches 1 --models digits_cnn  # dry run
    python3 benchmarks/gpu_bench.py --torch-only --models resnet50   # eager and torch.compile rows only
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLES = ("digits_cnn", "digits_resnet", "digits_vit")
RESNET = "resnet50"


def log(message: str) -> None:
    print(f"[gpu_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def guarded(label: str, errors: list[str], func: Callable[[], Any]) -> Any:
    """Run one section; a failure becomes a line in the report instead of ending the benchmark."""
    try:
        return func()
    except Exception as exc:
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        errors.append(f"{label}: {type(exc).__name__}: {first}")
        log(f"FAILED {label}\n{traceback.format_exc()}")
        return None


# ---------------------------------------------------------------- environment


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}
    try:
        query = "name,driver_version,memory.total,clocks.max.sm"
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        env["gpu"] = out.splitlines()[0] if out else "none"
        head = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
        cuda = [line for line in head.splitlines() if "CUDA Version" in line]
        env["driver_line"] = " ".join(cuda[0].replace("|", " ").split()) if cuda else ""
    except (OSError, subprocess.SubprocessError):
        env["gpu"] = "none (nvidia-smi not found)"
    for module in ("onnxruntime", "onnx", "polygraphy", "numpy", "torch"):
        try:
            mod = __import__(module)
            env[module] = getattr(mod, "__version__", "?")
        except ImportError:
            env[module] = "not installed"
    try:
        import onnxruntime as ort

        env["ort_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    try:
        import torch

        env["torch_cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    except ImportError:
        pass
    return env


# ---------------------------------------------------------------- ResNet-50 and PyTorch eager


def build_torch_resnet50(device: str) -> Any:
    """torchvision's ResNet-50, random weights, BatchNorm statistics from random batches."""
    import torch
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50(weights=None).to(device)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(32, 3, 224, 224, device=device))
    return model.eval()


def export_onnx(model: Any, path: Path, device: str) -> str:
    """ONNX with a dynamic batch; the TorchScript exporter first, the dynamo one if it is gone."""
    import torch

    sample = torch.randn(1, 3, 224, 224, device=device)
    kwargs = dict(input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
    try:
        torch.onnx.export(model, (sample,), str(path), dynamo=False, **kwargs)
        return "torch.onnx.export (TorchScript), opset 17"
    except Exception as exc:
        log(f"TorchScript export failed ({exc}); trying the dynamo exporter")
        torch.onnx.export(model, (sample,), str(path), dynamo=True, external_data=False, **kwargs)
        return "torch.onnx.export (dynamo)"


def write_resnet_data(folder: Path, calib: int, evaluate: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    calib_path, eval_path = folder / "calib.npz", folder / "eval.npz"
    np.savez(calib_path, input=rng.standard_normal((calib, 3, 224, 224), dtype=np.float32))
    np.savez(eval_path, input=rng.standard_normal((evaluate, 3, 224, 224), dtype=np.float32))
    return calib_path, eval_path


def time_cuda(func: Callable[[], Any], warmup: int, repeats: int, max_seconds: float = 20.0) -> list[float]:
    import torch

    for _ in range(warmup):
        func()
    torch.cuda.synchronize()
    samples, deadline = [], time.perf_counter() + max_seconds
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        func()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1000.0)
        if time.perf_counter() > deadline and len(samples) >= 5:
            break
    return samples


def torch_eager(model: Any, eval_path: Path, batches: list[int], repeats: int) -> list[dict[str, Any]]:
    """PyTorch eager, the way a user would run the same model: FP32 (TF32 off) and two FP16 modes."""
    import copy

    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # the counterpart of ORT's exhaustive cuDNN search
    data = np.load(eval_path)["input"]
    half_model = copy.deepcopy(model).half().to(memory_format=torch.channels_last)
    rows = []
    for batch in batches:
        x = torch.from_numpy(np.ascontiguousarray(np.resize(data, (batch, *data.shape[1:])))).cuda()
        x_half = x.half().to(memory_format=torch.channels_last)
        with torch.no_grad():
            reference = model(x).float()

            def fp32(x: Any = x) -> Any:
                return model(x)

            def autocast(x: Any = x) -> Any:
                with torch.autocast("cuda", dtype=torch.float16):
                    return model(x)

            def half(x_half: Any = x_half) -> Any:
                return half_model(x_half)

            modes = [("fp32 (TF32 off)", fp32), ("fp16 autocast", autocast), ("fp16 .half() channels-last", half)]
            fp32_median = None
            for label, func in modes:
                samples = time_cuda(func, warmup=10, repeats=repeats)
                median = statistics.median(samples)
                fp32_median = fp32_median or median
                out = func().float()
                rows.append({
                    "model": RESNET, "batch": batch, "engine": f"PyTorch eager {label}",
                    "median_ms": median, "p90_ms": float(np.percentile(samples, 90)),
                    "throughput": batch * 1000.0 / median, "speedup_vs_fp32": fp32_median / median,
                    "max_abs_error": float((out - reference).abs().max()),
                    "cosine": float(torch.nn.functional.cosine_similarity(out.flatten(), reference.flatten(), dim=0)),
                    "top1_agreement": float((out.argmax(1) == reference.argmax(1)).float().mean()),
                })
                log(f"eager {label} b{batch}: {median:.3f} ms")
    return rows


def kernel_profile(func: Callable[[], Any], runs: int = 20) -> dict[str, Any]:
    """GPU kernels of ``runs`` calls through CUPTI: busy time, kernel count and idle time per call.

    Idle time is the wall time per call minus the kernels' time: launches, the executor between
    kernels and synchronisation, which CUDA graphs and kernel fusion remove.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(5):
        func()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(runs):
            func()
        torch.cuda.synchronize()
        wall = (time.perf_counter() - start) * 1000.0 / runs
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
               and "memcpy" not in e.name.lower() and "memset" not in e.name.lower()]
    busy = sum(e.device_time for e in kernels) / 1000.0 / runs
    by_kind: dict[str, float] = {}
    by_name: dict[str, float] = {}
    for event in kernels:
        kind = kernel_kind(event.name)
        by_kind[kind] = by_kind.get(kind, 0.0) + event.device_time / 1000.0 / runs
        by_name[event.name] = by_name.get(event.name, 0.0) + event.device_time / 1000.0 / runs
    top = sorted(by_name.items(), key=lambda kv: -kv[1])[:8]
    return {"wall_ms": wall, "kernel_ms": busy, "kernels_per_run": len(kernels) / runs,
            "idle_ms": wall - busy, "by_kind_ms": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
            "top_kernels_ms": [[name[:110], ms] for name, ms in top]}


def kernel_kind(name: str) -> str:
    """Convolution/matrix kernels (cuDNN, CUTLASS, Triton templates) apart from the rest."""
    lowered = name.lower()
    if any(k in lowered for k in ("conv", "gemm", "xmma", "cutlass", "sm90", "implicit", "mm_", "wgrad", "dgrad")):
        return "convolution / matmul"
    if "pool" in lowered:
        return "pooling"
    if any(k in lowered for k in ("nchw", "nhwc", "transpose", "layout", "permute")):
        return "layout transform"
    return "elementwise / other"


def torch_compiled(model: Any, eval_path: Path, batches: list[int], repeats: int, modes: list[str],
                   rows: list[dict[str, Any]], kernels: list[dict[str, Any]], save: Callable[[], None]) -> None:
    """``torch.compile`` of the FP16 channels-last model, one fresh compile per mode and batch (static shapes).

    Compile time is the wall time of the first call, which compiles (and for max-autotune, benchmarks
    candidate kernels and records CUDA graphs).
    """
    import copy

    import torch

    data = np.load(eval_path)["input"]
    half_model = copy.deepcopy(model).half().to(memory_format=torch.channels_last)
    for mode in modes:
        for batch in batches:
            x = torch.from_numpy(np.ascontiguousarray(np.resize(data, (batch, *data.shape[1:])))).cuda()
            x_half = x.half().to(memory_format=torch.channels_last)
            torch._dynamo.reset()
            compiled = torch.compile(half_model, mode=mode, dynamic=False)
            with torch.no_grad():
                reference = model(x).float()
                start = time.perf_counter()
                compiled(x_half)
                torch.cuda.synchronize()
                compile_s = time.perf_counter() - start

                def call(x_half: Any = x_half, compiled: Any = compiled) -> Any:
                    return compiled(x_half)

                samples = time_cuda(call, warmup=10, repeats=repeats)
                median = statistics.median(samples)
                out = call().float()
                label = f"torch.compile {mode} fp16 channels-last"
                rows.append({
                    "model": RESNET, "batch": batch, "engine": label, "compile_s": compile_s,
                    "median_ms": median, "p90_ms": float(np.percentile(samples, 90)),
                    "throughput": batch * 1000.0 / median,
                    "max_abs_error": float((out - reference).abs().max()),
                    "cosine": float(torch.nn.functional.cosine_similarity(out.flatten(), reference.flatten(), dim=0)),
                    "top1_agreement": float((out.argmax(1) == reference.argmax(1)).float().mean()),
                })
                log(f"{label} b{batch}: {median:.3f} ms (compiled in {compile_s:.0f} s)")
                kernels.append({"engine": label, "batch": batch, **kernel_profile(call)})
            save()


# ---------------------------------------------------------------- workbench pipeline


def pipeline_rows(pipeline: Any, model: Path, name: str, batches: list[int], precisions: list[str],
                  backend: str, repeats: int, calib: Path | None, evaluate: Path | None,
                  errors: list[str]) -> tuple[list[dict[str, Any]], dict[tuple[int, str], str]]:
    rows, artifacts = [], {}
    for batch in batches:
        fp32_done = False
        for variant in precisions:
            # "fp16" or, pruned first, "fp16+channel:0.5"
            precision, _, pruning = variant.partition("+")
            method, _, ratio = pruning.partition(":")

            def one(precision: str = precision, batch: int = batch, method: str = method, ratio: str = ratio) -> Any:
                from workbench.build_options import BuildOptions

                return pipeline.run(model, BuildOptions(
                    precision, calib=calib, eval=evaluate, batch=batch, backend=backend, warmup=10, repeats=repeats,
                    prune_method=method or None, prune_ratio=float(ratio or 0)))

            label = f"{precision} · {method} {ratio}" if method else precision
            log(f"pipeline {name} {label} b{batch} on {backend}")
            run = guarded(f"{name} {label} batch {batch}", errors, one)
            if run is None:
                rows.append({"model": name, "batch": batch, "engine": f"workbench {backend} {label}",
                             "error": errors[-1]})
                continue
            artifacts[(batch, variant)] = run.artifact
            artifacts[(batch, "fp32")] = run.model_path
            ref, lat, drift = run.reference_latency_ms, run.latency_ms, run.drift
            if not fp32_done:
                rows.append({"model": name, "batch": batch, "engine": f"workbench {backend} fp32 (reference)",
                             "median_ms": ref["median"], "p90_ms": ref["p90"],
                             "throughput": ref["throughput_per_s"], "speedup_vs_fp32": 1.0,
                             "accuracy": drift.get("reference_accuracy")})
                fp32_done = True
            rows.append({
                "model": name, "batch": batch, "engine": f"workbench {backend} {label}",
                "median_ms": lat["median"], "p90_ms": lat["p90"], "throughput": lat["throughput_per_s"],
                "speedup_vs_fp32": run.speedup, "max_abs_error": drift.get("max_abs_error"),
                "cosine": drift.get("cosine_similarity"), "top1_agreement": drift.get("top1_agreement"),
                "accuracy": drift.get("accuracy"), "fp32_in_same_run_ms": ref["median"],
                "notes": "; ".join(n for n in run.notes if "cache" not in n)[:300],
            })
            log(f"  {lat['median']:.3f} ms vs FP32 {ref['median']:.3f} ms: {run.speedup:.2f}x")
    return rows, artifacts


def provider_option_study(artifacts: dict[tuple[int, str], str], batch: int, eval_path: Path,
                          repeats: int) -> list[dict[str, Any]]:
    """ResNet-50's FP32 and FP16 files under different CUDA provider options, timed in interleaved rounds."""
    from workbench.backends.onnxruntime_cuda import OnnxruntimeCudaBackend
    from workbench.measure.latency import measure_latency

    data = np.load(eval_path)["input"]
    feed = {"input": np.ascontiguousarray(np.resize(data, (batch, *data.shape[1:])))}
    rows = []
    # FP32 and FP16 files, pruned ones included: channels-last may suit a slimmer model differently.
    studied = [v for b, v in artifacts if b == batch and v.partition("+")[0] in ("fp32", "fp16")]
    for precision in sorted(studied, key=lambda v: (v.partition("+")[0] != "fp32", v)):
        path = artifacts[(batch, precision)]
        chosen = OnnxruntimeCudaBackend().option_choice(Path(path)).options
        variants = {}
        for nhwc in ("1", "0"):
            for search in ("EXHAUSTIVE", "HEURISTIC"):
                options = {"prefer_nhwc": nhwc, "cudnn_conv_algo_search": search}
                default = chosen["prefer_nhwc"] == nhwc and chosen["cudnn_conv_algo_search"] == search
                variants[f"prefer_nhwc={nhwc} {search}{' (backend default)' if default else ''}"] = options
        engines = {label: OnnxruntimeCudaBackend(options).load(Path(path)) for label, options in variants.items()}
        try:
            stats = measure_latency(engines, feed, warmup=10, repeats=repeats)
        finally:
            for engine in engines.values():
                engine.close()
        for label, stat in stats.items():
            rows.append({"precision": precision, "options": label, "median_ms": stat.median, "p90_ms": stat.p90})
            log(f"options {precision} {label}: {stat.median:.3f} ms")
    return rows


def cuda_graph_study(artifacts: dict[tuple[int, str], str], batches: list[int], eval_path: Path,
                     repeats: int, kernels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FP32 and FP16 with the backend's defaults (CUDA graphs on) against graphs off, interleaved per file.

    The default FP16 engine's GPU kernels are recorded too, for the comparison with torch.compile.
    """
    from workbench.backends.onnxruntime_cuda import OnnxruntimeCudaBackend
    from workbench.measure.latency import measure_latency

    data = np.load(eval_path)["input"]
    rows = []
    for batch in batches:
        feed = {"input": np.ascontiguousarray(np.resize(data, (batch, *data.shape[1:])))}
        for precision in ("fp32", "fp16"):
            if (batch, precision) not in artifacts:
                continue
            path = Path(artifacts[(batch, precision)])
            engines = {"graphs on (backend default)": OnnxruntimeCudaBackend().load(path),
                       "graphs off": OnnxruntimeCudaBackend({"enable_cuda_graph": "0"}).load(path)}
            try:
                stats = measure_latency(engines, feed, warmup=10, repeats=repeats)
                for label, stat in stats.items():
                    rows.append({"batch": batch, "precision": precision, "options": label,
                                 "median_ms": stat.median, "p90_ms": stat.p90,
                                 "note": engines[label].execution_notes()[0]})
                    log(f"CUDA graphs {precision} b{batch} {label}: {stat.median:.3f} ms")
                if precision == "fp16":
                    for label, engine in engines.items():
                        kernels.append({"engine": f"workbench onnxruntime-cuda fp16, {label}", "batch": batch,
                                        **kernel_profile(lambda engine=engine, feed=feed: engine.time_once(feed))})
            finally:
                for engine in engines.values():
                    engine.close()
    return rows


def profiler_check(artifact: str, batch: int, eval_path: Path, backend_name: str, folder: Path) -> dict[str, Any]:
    """How much of the measured time ORT's per-node profiler accounts for, and where nodes ran."""
    from workbench.backends.registry import get_backend

    data = np.load(eval_path)["input"]
    feed = {"input": np.ascontiguousarray(np.resize(data, (batch, *data.shape[1:])).astype(np.float32))}
    backend = get_backend(backend_name)
    with backend.load(Path(artifact)) as plain:
        for _ in range(10):
            plain.time_once(feed)
        e2e = statistics.median(plain.time_once(feed) for _ in range(30))
    engine = backend.load(Path(artifact), profile_dir=folder)
    try:
        for _ in range(10):
            engine.time_once(feed)
        trace = engine.session.end_profiling()  # type: ignore[attr-defined]  # the raw ORT trace
    finally:
        engine.close()
    events = json.loads(Path(trace).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"][1:]
    per_run = []  # node time summed within each run; the first run (cuDNN algorithm search) is left out
    for run in runs:
        inside = [e for e in nodes if run["ts"] <= e["ts"] <= run["ts"] + run["dur"]]
        per_run.append((sum(e["dur"] for e in inside) / 1000.0, inside))
    providers: dict[str, int] = {}
    for event in per_run[-1][1] if per_run else []:
        provider = event.get("args", {}).get("provider", "?")
        providers[provider] = providers.get(provider, 0) + 1
    return {"batch": batch, "end_to_end_ms": e2e,
            "profiled_run_ms": statistics.median(r["dur"] / 1000.0 for r in runs) if runs else float("nan"),
            "sum_of_nodes_ms": statistics.median(t for t, _ in per_run) if per_run else float("nan"),
            "nodes_per_provider": providers}


# ---------------------------------------------------------------- report


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def markdown(env: dict[str, Any], rows: list[dict[str, Any]], options: list[dict[str, Any]],
             graphs: list[dict[str, Any]], kernels: list[dict[str, Any]],
             profile: dict[str, Any] | None, errors: list[str], extra: list[str]) -> str:
    lines = ["## Environment", ""]
    lines += [f"- {key}: {value}" for key, value in env.items()]
    lines += extra
    lines += ["", "## Latency, throughput, speed-up and drift", "",
              "Speed-up is against the FP32 reference timed in the same interleaved rounds (workbench rows) "
              "or against PyTorch eager FP32 (eager rows). Drift is against the FP32 output of the same engine.", "",
              "| model | batch | engine | median ms | p90 ms | samples/s | speed-up vs FP32 | max abs err "
              "| cosine | top-1 agree | accuracy | compile s |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['batch']} | {row['engine']} | failed: {row['error'][:120]} "
                         "| | | | | | | | |")
            continue
        speedup = row.get("speedup_vs_fp32")
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['engine']} | {fmt(row.get('median_ms'))} "
            f"| {fmt(row.get('p90_ms'))} | {fmt(row.get('throughput'), 0)} "
            f"| {fmt(speedup, 2) + 'x' if speedup is not None else ''} "
            f"| {fmt(row.get('max_abs_error'), 4)} | {fmt(row.get('cosine'), 5)} "
            f"| {fmt(row.get('top1_agreement'), 3)} | {fmt(row.get('accuracy'), 3)} | {fmt(row.get('compile_s'), 1)} |"
        )
    if options:
        lines += ["", "## CUDA provider options, ResNet-50 batch 32 (interleaved rounds per precision)", "",
                  "| precision | options | median ms | p90 ms |", "|---|---|---:|---:|"]
        lines += [f"| {o['precision']} | {o['options']} | {fmt(o['median_ms'])} | {fmt(o['p90_ms'])} |"
                  for o in options]
    if graphs:
        lines += ["", "## CUDA graphs on and off, ResNet-50 (interleaved rounds per file and batch)", "",
                  "| batch | precision | options | median ms | p90 ms |", "|---:|---|---|---:|---:|"]
        lines += [f"| {g['batch']} | {g['precision']} | {g['options']} | {fmt(g['median_ms'])} | {fmt(g['p90_ms'])} |"
                  for g in graphs]
    if kernels:
        lines += ["", "## GPU kernels per run, ResNet-50 FP16 (PyTorch profiler, CUPTI)", "",
                  "Idle is wall time per run minus kernel time: launches, executor and synchronisation.", "",
                  "| batch | engine | wall ms | kernel ms | idle ms | kernels | by kind (ms) |",
                  "|---:|---|---:|---:|---:|---:|---|"]
        for k in sorted(kernels, key=lambda k: k["batch"]):
            kinds = ", ".join(f"{kind} {ms:.3f}" for kind, ms in k["by_kind_ms"].items())
            lines.append(f"| {k['batch']} | {k['engine']} | {fmt(k['wall_ms'])} | {fmt(k['kernel_ms'])} "
                         f"| {fmt(k['idle_ms'])} | {k['kernels_per_run']:.0f} | {kinds} |")
        lines += ["", "Longest kernels (ms per run, summed over calls of the same kernel):", ""]
        for k in sorted(kernels, key=lambda k: k["batch"]):
            top = "; ".join(f"`{name}` {ms:.3f}" for name, ms in k["top_kernels_ms"])
            lines.append(f"- b{k['batch']} {k['engine']}: {top}")
    if profile:
        lines += ["", f"## ORT per-node profiler, {profile.get('model')} FP16", "",
                  f"- batch {profile['batch']}: end-to-end {fmt(profile['end_to_end_ms'])} ms; with the profiler on, "
                  f"model_run {fmt(profile['profiled_run_ms'])} ms and the sum of node times "
                  f"{fmt(profile['sum_of_nodes_ms'])} ms (medians over runs after the first)",
                  f"- nodes per provider (one run): {profile['nodes_per_provider']}"]
    notes = [row for row in rows if row.get("notes")]
    if notes:
        lines += ["", "## Build notes", ""]
        lines += [f"- {row['model']} {row['engine'].split(' ', 2)[-1]} b{row['batch']}: {row['notes']}"
                  for row in notes]
    if errors:
        lines += ["", "## Failures", ""] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-bench-out"))
    parser.add_argument("--work", type=Path, help="folder for the exported ResNet-50, its data and the workspace "
                        "(default: a fresh temporary folder); the files stay for later `workbench` commands")
    parser.add_argument("--backend", default="onnxruntime-cuda")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--precisions", default="fp16,bf16,int8,fp32+channel:0.5,fp16+channel:0.5",
                        help="comma-separated; PRECISION+METHOD:RATIO prunes first (speed-up still vs unpruned FP32)")
    parser.add_argument("--models", default=",".join((*SAMPLES, RESNET)))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--calib-samples", type=int, default=64)
    parser.add_argument("--eval-samples", type=int, default=64)
    parser.add_argument("--torch-only", action="store_true", help="only export ResNet-50 and time PyTorch")
    parser.add_argument("--torch-compile", default="default,max-autotune",
                        help="torch.compile modes to time on ResNet-50 FP16 (empty for none)")
    parser.add_argument("--no-eager", action="store_true", help="skip PyTorch eager and torch.compile")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",")]
    precisions = args.precisions.split(",")
    models = args.models.split(",")
    compile_modes = [m for m in args.torch_compile.split(",") if m]
    errors: list[str] = []
    extra: list[str] = []
    rows: list[dict[str, Any]] = []
    options: list[dict[str, Any]] = []
    graphs: list[dict[str, Any]] = []
    kernels: list[dict[str, Any]] = []
    profile = None
    env = environment()
    log(f"environment: {env}")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    order = {name: i for i, name in enumerate(models)}

    def save() -> str:
        rows.sort(key=lambda r: (order.get(r["model"], 99), r["batch"]))
        report = markdown(env, rows, options, graphs, kernels, profile, errors, extra)
        (args.out / "gpu_results.md").write_text(report)
        (args.out / "gpu_results.json").write_text(json.dumps(
            {"environment": env, "rows": rows, "provider_options": options, "cuda_graphs": graphs,
             "kernels": kernels, "profiler": profile, "errors": errors}, indent=1, default=str))
        return report

    resnet_dir = work / RESNET
    resnet_dir.mkdir(parents=True, exist_ok=True)
    resnet_path = resnet_dir / "model.onnx"
    calib_path = eval_path = None
    if RESNET in models:
        def export() -> None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            model = build_torch_resnet50(device)
            how = export_onnx(model, resnet_path, device)
            extra.append(f"- ResNet-50: torchvision resnet50, random weights, BN statistics from 4 random batches; "
                         f"exported by {how}; calibration {args.calib_samples} and evaluation {args.eval_samples} "
                         "samples of N(0,1) noise (so accuracy is meaningless; drift and top-1 agreement are not)")
            nonlocal calib_path, eval_path
            calib_path, eval_path = write_resnet_data(resnet_dir, args.calib_samples, args.eval_samples)
            if args.no_eager:
                return
            if device != "cuda":
                errors.append("PyTorch eager and torch.compile: no CUDA device, skipped")
                return
            rows.extend(torch_eager(model, eval_path, batches, args.repeats))
            save()
            if compile_modes:
                guarded("torch.compile", errors, lambda: torch_compiled(
                    model, eval_path, batches, args.repeats, compile_modes, rows, kernels, save))

        guarded("ResNet-50 export / PyTorch", errors, export)
        save()

    if not args.torch_only:
        from workbench.backends.registry import availability
        from workbench.runs.pipeline import Pipeline

        status = availability()
        for name, s in status.items():
            extra.append(f"- backend {name}: {'available' if s.available else 'unavailable'}: {s.reason}")
        pipeline = Pipeline(work / "workspace")
        artifacts: dict[str, dict[tuple[int, str], str]] = {}
        if status[args.backend].available:
            for name in models:
                if name == RESNET:
                    if calib_path is None:
                        continue
                    model, calib, evaluate = resnet_path, calib_path, eval_path
                else:
                    model, calib, evaluate = REPO / "sample_models" / name / "model.onnx", None, None
                    if not model.is_file():
                        errors.append(f"{name}: sample model missing")
                        continue
                found, artifacts[name] = pipeline_rows(pipeline, model, name, batches, precisions, args.backend,
                                                       args.repeats, calib, evaluate, errors)
                rows.extend(found)
                save()
        else:
            errors.append(f"backend {args.backend} unavailable: {status[args.backend].reason}")
        resnet_artifacts = artifacts.get(RESNET, {})
        big = max(batches)
        if args.backend == "onnxruntime-cuda" and resnet_artifacts and eval_path is not None:
            graphs = guarded("CUDA graph study", errors, lambda: cuda_graph_study(
                resnet_artifacts, batches, eval_path, args.repeats, kernels)) or []
            save()
            options = guarded("provider option study", errors,
                              lambda: provider_option_study(resnet_artifacts, big, eval_path, args.repeats)) or []
            save()
        profiled = RESNET if resnet_artifacts else next(reversed(artifacts), None)
        if profiled is not None and (big, "fp16") in artifacts[profiled]:
            data = eval_path if profiled == RESNET else REPO / "sample_models" / profiled / "eval.npz"
            profile = guarded("profiler check", errors, lambda: profiler_check(
                artifacts[profiled][(big, "fp16")], big, data, args.backend, work / "profile"))
            if profile:
                profile["model"] = profiled

    print(save())
    return 0


if __name__ == "__main__":
    sys.exit(main())
