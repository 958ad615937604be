"""The CPU's instruction-set features that decide how each precision runs, read from ``/proc/cpuinfo``.

OpenVINO's device profile names them (AMX, AVX-512 BF16/VNNI decide whether BF16 or INT8 pays), and static INT8
reads one of them: without VNNI, an x86 CPU multiplies 8-bit values with an instruction whose 16-bit sums saturate
(``vpmaddubsw``), so ONNX Runtime's INT8 products of full-range weights overflow unless weights keep 7 bits.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

#: cpuinfo flag -> the name people know, in the order they matter for inference.
CPU_FEATURES = {
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
    "amx_fp16": "AMX-FP16",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512f": "AVX-512",
    "avx2": "AVX2",
}


@lru_cache(maxsize=1)
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (empty where the OS has no cpuinfo, e.g. macOS or Windows)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_features(flags: frozenset[str]) -> list[str]:
    """The features that matter for inference, by their usual names."""
    return [name for flag, name in CPU_FEATURES.items() if flag in flags]


#: The flags of x86 instructions that sum 8-bit products into 32 bits without saturating.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "avx_vnni_int8"})


def int8_products_saturate(flags: frozenset[str]) -> bool:
    """Whether this is an x86 CPU without VNNI (its cpuinfo lists AVX2 or SSE4.1 but no VNNI or AMX-INT8), where
    8-bit weights' products saturate in ONNX Runtime. False where nothing is known (no cpuinfo, or not x86)."""
    return bool(flags & {"avx2", "sse4_1"}) and not flags & VNNI_FLAGS
