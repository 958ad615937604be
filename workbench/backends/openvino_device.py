"""What an OpenVINO device can do, and so what each precision will do on it.

The CPU features that decide whether BF16 or INT8 pays (AMX, AVX-512 BF16/VNNI) come from
``/proc/cpuinfo``; what OpenVINO itself will run comes from its ``OPTIMIZATION_CAPABILITIES``.
Both are shown in ``workbench backends`` and the Build panel, so a user learns before building
that BF16 here is an AMX win or a refusal, not after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.backends.cpu_features import cpu_features, cpu_flags

#: Workbench precision -> OpenVINO capability and INFERENCE_PRECISION_HINT value.
HINTS = {"fp32": ("FP32", "f32"), "bf16": ("BF16", "bf16"), "fp16": ("FP16", "f16")}


@dataclass(frozen=True)
class DeviceProfile:
    """One OpenVINO device: its name, what OpenVINO says it can run, and (for CPUs) its features."""

    device: str
    full_name: str
    capabilities: frozenset[str]
    flags: frozenset[str] = frozenset()

    @property
    def is_cpu(self) -> bool:
        return self.device.startswith("CPU")

    def supports(self, precision: str) -> bool:
        """Whether OpenVINO runs ``precision`` (fp32/bf16/fp16) natively on this device."""
        return HINTS[precision][0] in self.capabilities

    def refusal(self, precision: str) -> str | None:
        """The sentence saying why a hinted precision cannot run here, or None if it can."""
        if precision not in HINTS or self.supports(precision):
            return None
        need = {"bf16": "AVX-512 BF16 or AMX-BF16", "fp16": "AVX-512 FP16 or AMX-FP16"}.get(precision, "")
        return (f"OpenVINO cannot run {precision.upper()} on {self.full_name} ({self.device}): it lists only "
                f"{', '.join(sorted(self.capabilities)) or 'no precisions'}"
                + (f", and {precision.upper()} needs {need}." if self.is_cpu and need else "."))

    def dominated(self, precision: str) -> str | None:
        """Why the search skips FP16 on a CPU with AMX-BF16 but no AMX-FP16: BF16 runs on the matrix units, FP16 on
        vector instructions only, where OpenVINO ran it no faster than FP32 (MiniLM and MPNet encoders: 1.00x,
        0.98x); None for every other precision and device."""
        features = set(cpu_features(self.flags))
        if precision != "fp16" or not self.is_cpu or "AMX-BF16" not in features or "AMX-FP16" in features:
            return None
        return ("FP16 not screened: this CPU runs BF16 on AMX-BF16 matrix units but FP16 on vector instructions only, "
                "no faster than FP32 (ask for it with --precisions fp16)")

    def plan(self) -> dict[str, str]:
        """What each workbench precision will do on this device, one line each."""
        return {precision: self._plan_line(precision) for precision in ("fp32", "bf16", "fp16", "int8", "int8-dynamic")}

    def _plan_line(self, precision: str) -> str:
        if precision == "fp32":
            default = " (OpenVINO would run BF16 by default here)" if self.is_cpu and self.supports("bf16") else ""
            return f"FP32 file with INFERENCE_PRECISION_HINT=f32: a true FP32 reference{default}"
        if precision in ("bf16", "fp16"):
            refusal = self.refusal(precision)
            if refusal:
                return f"refused: {refusal}"
            return f"FP32 file with INFERENCE_PRECISION_HINT={HINTS[precision][1]} ({self.how(precision)})"
        if precision == "int8":
            if "INT8" not in self.capabilities:
                return "Q/DQ file; OpenVINO lists no INT8 support here, so it runs dequantized"
            return f"Q/DQ file, quantized layers in INT8 ({self.how(precision)}); the rest FP32"
        return "dynamic-quantized file (MatMulInteger), other layers FP32"

    def how(self, precision: str) -> str:
        """Which hardware will run ``precision`` (bf16, fp16 or int8) here, in a few words."""
        features = set(cpu_features(self.flags))
        if not self.is_cpu:
            return f"native {precision.upper()} on the {self.device}"
        if precision == "int8":
            return next((f"{name} kernels" for name in ("AMX-INT8", "AVX-512 VNNI", "AVX-VNNI") if name in features),
                        "no VNNI/AMX: INT8 is emulated and rarely faster")
        unit = {"bf16": "AMX-BF16", "fp16": "AMX-FP16"}[precision]
        vector = {"bf16": "AVX-512 BF16", "fp16": "AVX-512 FP16"}[precision]
        if unit in features:
            return f"{unit} matrix units"
        if vector in features:
            # What runs it, not a forecast: on these instructions BF16 has both beaten and trailed FP32, so only
            # the measured speed-up beside this note says which.
            return f"{vector} vector instructions (no {unit} matrix units, where {precision.upper()} gains most)"
        return "no native instructions listed"

    def summary(self) -> list[str]:
        """Lines for `workbench backends` and the Build panel."""
        lines = [f"{self.device}: {self.full_name}; OpenVINO capabilities: {', '.join(sorted(self.capabilities))}"]
        if self.is_cpu:
            lines.append(f"CPU features: {', '.join(cpu_features(self.flags)) or 'none of AVX2/AVX-512/VNNI/AMX'}")
        lines += [f"{precision}: {line}" for precision, line in self.plan().items()]
        return lines


def device_profile(core: Any, device: str) -> DeviceProfile:
    """Ask OpenVINO about ``device`` (it must be listed in ``core.available_devices``)."""
    capabilities = frozenset(str(c) for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
    full_name = str(core.get_property(device, "FULL_DEVICE_NAME"))
    flags = cpu_flags() if device.startswith("CPU") else frozenset()
    return DeviceProfile(device, full_name, capabilities, flags)
