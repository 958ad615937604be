"""Where FP8 (E4M3) can run, and the one sentence that says why not.

FP8 tensor cores exist from compute capability 8.9 on (Ada; Hopper is 9.0, Blackwell 10.x and 12.x).
Below that, and on any CPU, an FP8 file could only be simulated by quantize/dequantize pairs around
FP32 kernels: slower than FP32 and no measure of what FP8 hardware would do, so it is refused rather
than timed. The GPU's capability comes from ``nvidia-smi``, which every NVIDIA driver installs.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache

FP8_MIN_CAPABILITY = (8, 9)
#: The way out, closing the one sentence of every refusal.
FP8_FIX = "use fp16 or int8 here, or fp8 on an Ada, Hopper or Blackwell GPU with onnxruntime-cuda or tensorrt"


def fp8_blocker(backend: str, gpu: tuple[str, tuple[int, int] | None] | None) -> str | None:
    """None where FP8 runs; else what stops it, as a clause. ``gpu``: (name, compute capability or None when it
    could not be read), None where the backend runs on no NVIDIA GPU."""
    if gpu is None:
        return f"{backend} does not run on one (there FP8 would only be simulated)"
    name, capability = gpu
    if capability is None:
        return f"the compute capability of this {name} could not be read (nvidia-smi)"
    if capability < FP8_MIN_CAPABILITY:
        return f"this {name} is {_text(capability)}, without FP8 tensor cores"
    return None


def fp8_refusal(backend: str, gpu: tuple[str, tuple[int, int] | None] | None) -> str | None:
    """None where FP8 runs; else why not and what to do, in one sentence (``fp8_blocker``'s arguments)."""
    blocker = fp8_blocker(backend, gpu)
    if blocker is None:
        return None
    need = f"FP8 needs an NVIDIA GPU of compute capability {_text(FP8_MIN_CAPABILITY)} or newer"
    return f"{need}, and {blocker}: {FP8_FIX}."


def _text(capability: tuple[int, int]) -> str:
    return f"{capability[0]}.{capability[1]}"


@lru_cache(maxsize=8)
def nvidia_gpu(device_id: int = 0) -> tuple[str, tuple[int, int] | None]:
    """The name and compute capability of GPU ``device_id`` as the driver reports them (None: unreadable)."""
    try:
        out = subprocess.run(["nvidia-smi", f"--id={device_id}", "--query-gpu=name,compute_cap",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return f"NVIDIA GPU {device_id}", None
    return parse_gpu_query(out, device_id)


def parse_gpu_query(out: str, device_id: int = 0) -> tuple[str, tuple[int, int] | None]:
    """``nvidia-smi --query-gpu=name,compute_cap`` output ("NVIDIA H200, 9.0") as (name, capability)."""
    name, _, cap = out.strip().splitlines()[0].rpartition(",") if out.strip() else ("", "", "")
    major, _, minor = cap.strip().partition(".")
    if not (major.isdigit() and minor.isdigit()):
        return name.strip() or f"NVIDIA GPU {device_id}", None
    return name.strip(), (int(major), int(minor))
