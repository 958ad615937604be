"""CUDA provider options chosen per precision of the file, each with the reason a run records.

The CUDA provider's options decide which cuDNN engines ONNX Runtime may use, and the right choice
differs by what the file computes in (figures on an H100/H200, ResNet-50, ``benchmarks/RESULTS.md``):

* **FP32 files** (the reference) and **quantized Q/DQ files** (INT8, FP8 simulation: their
  arithmetic between the Q/DQ pairs is FP32) get ``use_tf32=0``, so FP32 is true single precision
  and a variant's speed-up and drift are against real FP32; NCHW, whose FP32 kernels were faster
  (batch 32: 12.4 ms against 14.8 ms channels-last).
* **FP16/BF16 files** never get ``use_tf32=0``: ONNX Runtime then removes cuDNN's tensor-core
  engines for half-precision convolutions too, cuDNN finds no fused plan (52 ``cudnn_frontend``
  "No execution plans support the graph" lines on loading ResNet-50 FP16) and falls back without
  bias fusion. They run channels-last (``prefer_nhwc=1``: 3.7 ms against 4.5 ms at batch 32) with
  the convolution bias fused into cuDNN's epilogue (``fuse_conv_bias=1``: 2.23 ms against
  3.12 ms), which cuDNN accepts only channels-last ("Epilogue tensors must be ... NHWC" in NCHW).
* cuDNN's algorithm is picked by its heuristic (``HEURISTIC``); ``DEFAULT`` (a fixed algorithm,
  no choice at all: 16.9 ms against 2.1 ms) is refused, ``EXHAUSTIVE`` stays the user's to ask.

The settings chosen for speed (``tuned``: the fused bias) change which kernels run, so an engine
checks them against FP32 on the evaluation data before timing (``cuda_option_check``); the same
file without them gives the variant's own drift. TF32 at its default is no such setting: it is
what a half file runs with anyway, and turning it off is what this module exists to avoid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import onnx

from workbench.errors import DataError
from workbench.model.op_types import QDQ_OP_TYPES

#: Options every session gets unless the user sets them.
BASE_OPTIONS: dict[str, str] = {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC"}
_HALF_TYPES = (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
_TRUE = ("1", "true")


def file_compute(model: onnx.ModelProto) -> str:
    """What the file computes in: "half" (FP16/BF16 weights), "quantized" (Q/DQ pairs) or "fp32"."""
    if any(init.data_type in _HALF_TYPES for init in model.graph.initializer):
        return "half"
    if any(node.op_type in QDQ_OP_TYPES for node in model.graph.node):
        return "quantized"
    return "fp32"


@dataclass(frozen=True)
class OptionChoice:
    """The provider options for one file, why each was set, and which were set for speed."""

    options: dict[str, str]
    reasons: tuple[str, ...]
    #: Keys set for speed that change which kernels run: checked against FP32 before timing.
    tuned: tuple[str, ...] = ()
    #: The options the tuned ones are compared with (the file's own drift); None when nothing is tuned.
    plain: dict[str, str] | None = None

    @property
    def note(self) -> str:
        return "CUDA provider options: " + "; ".join(self.reasons)

    def without(self, keys: tuple[str, ...], why: str) -> OptionChoice:
        """This choice with ``keys`` back at their plain values, and the reason they were dropped."""
        assert self.plain is not None
        options = dict(self.options)
        for key in keys:
            options.pop(key, None)
            if key in self.plain:
                options[key] = self.plain[key]
        tuned = tuple(k for k in self.tuned if k not in keys)
        reasons = tuple(r for r in self.reasons if not r.startswith(keys)) + ((why,) if why else ())
        return dataclasses.replace(self, options=options, reasons=reasons, tuned=tuned)


def check_user_options(options: Mapping[str, str]) -> None:
    """Refuse the provider options measured to be wrong whatever the model (raised before anything is built)."""
    search = options.get("cudnn_conv_algo_search", "").upper()
    if search == "DEFAULT":
        raise DataError(
            "cudnn_conv_algo_search=DEFAULT runs cuDNN's fixed default convolution algorithm without asking "
            "which is fast (ResNet-50 FP16 batch 32 on an H200: 16.9 ms against 2.1 ms with HEURISTIC).",
            "Leave it out (HEURISTIC), or use cudnn_conv_algo_search=EXHAUSTIVE.")
    if options.get("fuse_conv_bias", "0").lower() in _TRUE and options.get("prefer_nhwc", "1").lower() not in _TRUE:
        raise DataError(
            "fuse_conv_bias=1 needs channels-last: with prefer_nhwc=0 cuDNN refuses the fused bias at the first "
            "convolution (\"Epilogue tensors must be ... NHWC\").",
            "Drop prefer_nhwc=0, or drop fuse_conv_bias=1.")


def choose_options(user: Mapping[str, str], model: onnx.ModelProto) -> OptionChoice:
    """The options one file's session gets: the user's where given (a half file never gets use_tf32=0),
    else what its precision runs fastest with without leaving FP32's results."""
    check_user_options(user)
    compute = file_compute(model)
    options = {**BASE_OPTIONS, **user}
    options.pop("enable_cuda_graph", None)  # the engine sets it (cuda_graphs)
    reasons = [f"cudnn_conv_algo_search={options['cudnn_conv_algo_search']}"
               + (" (cuDNN's heuristic pick; DEFAULT is refused)" if "cudnn_conv_algo_search" not in user
                  else " (as given)")]
    if compute != "half":
        what = "FP32 file" if compute == "fp32" else "Q/DQ file, FP32 arithmetic between its pairs"
        if "use_tf32" not in user:
            options["use_tf32"] = "0"
            reasons.append(f"use_tf32=0 ({what}: true FP32, so speed-ups and drift are against real FP32)")
        else:
            reasons.append(f"use_tf32={user['use_tf32']} (as given)")
        fuse = options.get("fuse_conv_bias", "0").lower() in _TRUE
        options.setdefault("prefer_nhwc", "1" if fuse else "0")
        reasons.append(f"prefer_nhwc={options['prefer_nhwc']}" + (
            " (as given)" if "prefer_nhwc" in user else " (channels-last for the fused bias)" if fuse else
            f" ({what}: NCHW FP32 kernels were the faster)"))
        return OptionChoice(options, tuple(reasons))
    return _half_choice(user, model, options, reasons)


def _half_choice(user: Mapping[str, str], model: onnx.ModelProto, options: dict[str, str],
                 reasons: list[str]) -> OptionChoice:
    """FP16/BF16: tensor cores channels-last, bias fused where there are convolutions, TF32 never off."""
    tuned: list[str] = []
    if user.get("use_tf32") == "0":
        del options["use_tf32"]
        reasons.append("use_tf32=0 not applied (FP16/BF16 file: it removes cuDNN's tensor-core engines, so "
                       "convolutions find no fused plan); TF32 at ONNX Runtime's default")
    elif "use_tf32" in user:
        reasons.append(f"use_tf32={user['use_tf32']} (as given)")
    else:
        reasons.append("use_tf32 at ONNX Runtime's default (FP16/BF16 file: TF32 off would remove cuDNN's "
                       "tensor-core engines)")
    options.setdefault("prefer_nhwc", "1")
    reasons.append(f"prefer_nhwc={options['prefer_nhwc']}" + (
        " (as given)" if "prefer_nhwc" in user else " (FP16/BF16 tensor-core convolutions are channels-last)"))
    has_conv = any(node.op_type in ("Conv", "FusedConv") for node in model.graph.node)
    if "fuse_conv_bias" in user:
        reasons.append(f"fuse_conv_bias={user['fuse_conv_bias']} (as given)")
    elif has_conv and options["prefer_nhwc"] in _TRUE:
        options["fuse_conv_bias"] = "1"
        tuned.append("fuse_conv_bias")
        reasons.append("fuse_conv_bias=1 (the convolution bias in cuDNN's epilogue instead of a separate pass; "
                       "channels-last only)")
    plain = {"fuse_conv_bias": "0"} if tuned else None
    return OptionChoice(options, tuple(reasons), tuple(tuned), plain)


def session_options(choice: OptionChoice, graphs: bool) -> dict[str, str]:
    """What ONNX Runtime is given for one session: the choice plus whether it captures CUDA graphs."""
    return {**choice.options, "enable_cuda_graph": str(int(graphs))}
