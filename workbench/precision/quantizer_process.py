"""ONNX Runtime's ``quantize_static``/``quantize_dynamic`` run in a child process whose temp folder is the build's.

The quantizer makes its temp folders with ``tempfile`` and takes no folder argument. Pointing
``tempfile`` at the build's scratch folder for the whole process would also move a notebook's own
temp files made on another thread (and a build's clean-up would delete them); a child process
with ``TMPDIR`` set keeps the switch to the quantizer alone. The child reports the quantizer's
warnings back, so they still become one build note.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

from workbench.errors import BuildError
from workbench.messages import library_message
from workbench.scratch import child_env, temp_folder

#: Keyword arguments that are ONNX Runtime enums, passed by member name.
_ENUMS = {"quant_format": "QuantFormat", "activation_type": "QuantType", "weight_type": "QuantType",
          "calibrate_method": "CalibrationMethod"}

_CHILD = """
import contextlib, io, json, logging, sys
from onnxruntime import quantization
request = json.loads(open(sys.argv[1]).read())
kwargs = request["kwargs"]
for name, enum in request["enums"].items():
    if name in kwargs:
        kwargs[name] = getattr(quantization, enum)[kwargs[name]]
messages = []
class Collect(logging.Handler):
    def emit(self, record):
        first = record.getMessage().strip().splitlines()[:1]
        if record.levelno >= logging.WARNING and first and not first[0].startswith("Traceback"):
            messages.append(first[0])
root = logging.getLogger()
root.handlers[:] = [Collect()]
root.setLevel(logging.WARNING)
with contextlib.redirect_stdout(io.StringIO()):
    getattr(quantization, request["function"])(**kwargs)
open(sys.argv[2], "w").write(json.dumps(messages))
"""


def run_quantizer(function: str, **kwargs: object) -> list[str]:
    """Call ``onnxruntime.quantization.<function>(**kwargs)`` in a child; returns its warnings.

    Enum arguments (``_ENUMS``) are given as member names, every other one as JSON.
    """
    with temp_folder("wb-quantizer-") as tmp:
        request, answer = Path(tmp) / "request.json", Path(tmp) / "warnings.json"
        request.write_text(json.dumps({"function": function, "kwargs": kwargs, "enums": _ENUMS}))
        done = subprocess.run([sys.executable, "-c", _CHILD, str(request), str(answer)],
                              env=child_env(), capture_output=True, text=True)
        if done.returncode == 0 and answer.is_file():
            return json.loads(answer.read_text())
    text = (done.stderr or done.stdout).strip()
    if "No space left on device" in text:
        raise OSError(errno.ENOSPC, library_message(text))
    if "MemoryError" in text or done.returncode in (-9, 137):
        raise MemoryError(library_message(text) or "the quantizer was killed for memory")
    raise BuildError(f"ONNX Runtime's {function} failed: {library_message(text) or f'exit status {done.returncode}'}",
                     "Run with --debug for the whole message; try --precision int8-dynamic or exclude the "
                     "failing node with --quant-option exclude=NODE.")
