"""Whether INT8 weights keep all 8 bits or 7, on the CPU that builds and runs them.

Without VNNI an x86 CPU sums pairs of 8-bit products in 16 bits that saturate, so ONNX Runtime's INT8
convolutions and matrix products of full-range weights overflow: on such a CPU a ResNet's static INT8 fell to an
output cosine of 0.74 against FP32, and to 0.9994 with 7-bit weights. The recipe's ``reduce_range`` decides where
it is given; by default the weights keep 7 bits exactly where the CPU saturates.
"""

from __future__ import annotations

from workbench.backends.base import QuantTarget
from workbench.backends.cpu_features import cpu_flags, int8_products_saturate

AUTO_NOTE = ("7-bit weights (reduce_range): this CPU has no VNNI, and 8-bit weights' products saturate on it "
             "(reduce_range=false keeps 8 bits)")


def seven_bit_weights(asked: bool | None, target: QuantTarget = "x86") -> tuple[bool, str]:
    """Whether the weights keep 7 bits (``asked``: the recipe's ``reduce_range``, None for this CPU's need), and
    the note that says so ("" where they keep 8)."""
    if asked is not None:
        return asked, "7-bit weights (reduce_range)" if asked else ""
    if target == "x86" and int8_products_saturate(cpu_flags()):
        return True, AUTO_NOTE
    return False, ""
