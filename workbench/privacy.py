"""Nothing leaves the machine by default: the engines' telemetry is off before either is imported.

ONNX Runtime queues process information (Python path, OS, CPU, a device id) under
``~/.cache/Microsoft/DeveloperTools`` and uploads it; ``ORT_DISABLE_TELEMETRY=1`` is its switch
(read by the native library when it loads, and inherited by every child process the workbench starts).
OpenVINO's model tools start its ``openvino_telemetry`` with consent pre-answered on ``import openvino``
and send an event; its own opt-out (``opt_in_out --opt_out``) writes ``~/intel`` and sends an opt-out
event itself, so the workbench takes the route OpenVINO and NNCF provide for a machine without that
package: the package is marked absent for this process, and both fall back to their no-telemetry
stubs ("No telemetry will be sent"). ``WORKBENCH_TELEMETRY=on`` leaves both engines to their defaults.
"""

from __future__ import annotations

import os
import sys

#: Set to "on" to let the engines report as they do by default (their own consent settings apply).
OPT_IN_VARIABLE = "WORKBENCH_TELEMETRY"


def engines_offline() -> bool:
    """Switch the engines' telemetry off unless the user opted in; returns whether it is off.

    Must run before ``onnxruntime`` or ``openvino`` is first imported (``workbench/__init__`` calls it).
    """
    if os.environ.get(OPT_IN_VARIABLE, "").strip().lower() in ("on", "1", "true", "yes"):
        return False
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]  # import then raises ImportError
    return True
