"""Everything about a TensorRT build that does not need TensorRT: options, versions, profiles.

Kept apart from the backend so it is tested on machines without TensorRT (all of CI), and so the
rules are in one place:

* Precision comes from the ONNX file and the network is strongly typed. TensorRT 11 removed the
  FP16/BF16/INT8/FP8 builder flags altogether; TensorRT 10 still has them, and they are used
  only when a user turns strong typing off there (weak typing lets TensorRT pick per layer).
* A dynamic batch dimension becomes one optimization profile: min 1, opt the batch being
  measured, max the larger of that batch and ``max_batch``. Any other dynamic dimension has no
  value to optimise for, so the build stops and says which one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import BackendUnavailable, BuildError
from workbench.model.inspect import TensorInfo

SUPPORTED_MAJORS = (10, 11)

INSTALL_HINT = (
    "TensorRT is not installed: pip install 'onnx-workbench[tensorrt]' on a Linux or Windows machine with an "
    "NVIDIA GPU (the tensorrt wheels download their libraries from NVIDIA's index, pypi.nvidia.com, which "
    "must be reachable), or use --backend onnxruntime-cuda."
)

#: Precisions whose builder flag TensorRT 10 has (weak typing only); TensorRT 11 has none of them.
_WEAK_TYPING_FLAGS = {"fp16": ("fp16",), "bf16": ("bf16",), "int8": ("int8",), "fp8": ("fp8",)}


@dataclass(frozen=True)
class TrtBuildOptions:
    """The workbench's TensorRT build knobs, in its own words; mapped by ``create_config_kwargs``."""

    #: 0 (fast build) .. 5 (most tactics tried); TensorRT's default is 3.
    optimization_level: int = 3
    #: Let TensorRT use 2:4 sparse kernels where weights are 2:4 sparse (the pruning step's "2:4").
    sparse_weights: bool = False
    #: Precision from the ONNX file (required on TensorRT 11); False lets TensorRT 10 choose per layer.
    strongly_typed: bool = True
    #: Largest batch the engine accepts when the model's batch dimension is dynamic.
    max_batch: int | None = None
    #: Tactic timing cache shared by builds; None picks one per TensorRT version under the user cache.
    timing_cache: Path | None = None


def parse_version(text: str) -> tuple[int, int]:
    """"10.13.0.35" -> (10, 13); raises BackendUnavailable for text that is no version."""
    match = re.match(r"^\s*(\d+)\.(\d+)", text or "")
    if not match:
        raise BackendUnavailable(f"TensorRT reports an unreadable version '{text}'.", "Reinstall TensorRT 10 or 11.")
    return int(match.group(1)), int(match.group(2))


def version_problem(text: str) -> str | None:
    """None when this TensorRT version is supported, else the sentence saying what to install."""
    try:
        major, _ = parse_version(text)
    except BackendUnavailable as exc:
        return str(exc)
    if major not in SUPPORTED_MAJORS:
        return (
            f"TensorRT {text} is installed, but the workbench supports TensorRT 10 and 11 "
            "(strongly typed networks): pip install --upgrade 'onnx-workbench[tensorrt]'."
        )
    return None


def validate_options(options: TrtBuildOptions, major: int) -> None:
    """Reject option combinations a TensorRT version cannot build, before minutes are spent."""
    if not 0 <= options.optimization_level <= 5:
        raise BuildError(
            f"TensorRT builder optimization level {options.optimization_level} is out of range.",
            "Use a level from 0 (fastest build) to 5 (most thorough); 3 is TensorRT's default.",
        )
    if options.max_batch is not None and options.max_batch < 1:
        raise BuildError(f"max_batch {options.max_batch} is not valid.", "Use 1 or more, or leave it unset.")
    if not options.strongly_typed and major >= 11:
        raise BuildError(
            f"TensorRT {major} builds only strongly typed networks; weak typing (precision flags) was removed.",
            "Keep strongly_typed=True: the workbench puts the precision in the ONNX file (FP16 casts, INT8 Q/DQ).",
        )


def precision_flags(precision: str, major: int, strongly_typed: bool) -> dict[str, bool]:
    """CreateConfig precision flags: none when strongly typed (the file decides), else TensorRT 10's."""
    if strongly_typed or major >= 11:
        return {}
    return {flag: True for flag in _WEAK_TYPING_FLAGS.get(precision, ())}


def optimization_profile(
    inputs: Sequence[TensorInfo], batch: int, max_batch: int | None = None
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) shapes per input, or {} when every input shape is fixed.

    Only the leading (batch) dimension may be dynamic; ``batch`` is the shape TensorRT tunes for.
    """
    if batch < 1:
        raise BuildError(f"Batch size {batch} is not valid.", "Use a batch of 1 or more.")
    top = max(batch, max_batch or batch)
    shapes = {}
    dynamic = False
    for tensor in inputs:
        low, opt, high = [], [], []
        for axis, dim in enumerate(tensor.shape):
            if isinstance(dim, int) and dim > 0:
                low.append(dim)
                opt.append(dim)
                high.append(dim)
                continue
            if axis != 0:
                raise BuildError(
                    f"Input '{tensor.name}' has a dynamic dimension '{dim}' at axis {axis}; TensorRT needs "
                    "a fixed size to optimise for there.",
                    "Re-export the model with that dimension fixed (only the batch dimension may be dynamic), "
                    "or fix it with `polygraphy surgeon sanitize --override-input-shapes`.",
                )
            dynamic = True
            low.append(1)
            opt.append(batch)
            high.append(top)
        shapes[tensor.name] = (tuple(low), tuple(opt), tuple(high))
    return shapes if dynamic else {}


def default_timing_cache(version: str, environ: dict[str, str] | None = None) -> Path:
    """One timing cache per TensorRT version, under the user's cache folder.

    Tactic timings are what makes a build slow; reusing them makes the second build of the same
    layers (every FP32 reference, every re-run) take seconds instead of minutes.
    """
    environ = os.environ if environ is None else environ
    root = Path(environ.get("XDG_CACHE_HOME") or Path(environ.get("HOME", "~")).expanduser() / ".cache")
    return root / "onnx-workbench" / "tensorrt" / f"timing-{version}.cache"


def create_config_kwargs(
    options: TrtBuildOptions,
    precision: str,
    major: int,
    profile: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]],
    timing_cache: Path | None,
) -> dict[str, Any]:
    """Keyword arguments for Polygraphy's ``CreateConfig``; TF32 stays off (Polygraphy's default)
    so an FP32 engine is a true FP32 reference. ``profiles`` holds Polygraphy ``Profile`` objects.
    """
    from polygraphy.backend.trt import Profile

    validate_options(options, major)
    kwargs: dict[str, Any] = {
        "builder_optimization_level": options.optimization_level,
        "sparse_weights": options.sparse_weights,
        **precision_flags(precision, major, options.strongly_typed),
    }
    if timing_cache is not None and timing_cache.is_file():
        kwargs["load_timing_cache"] = str(timing_cache)
    if profile:
        trt_profile = Profile()
        for name, (low, opt, high) in profile.items():
            trt_profile.add(name, low, opt, high)
        kwargs["profiles"] = [trt_profile]
    return kwargs
