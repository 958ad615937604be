"""Weight-only INT8/INT4 the way OpenVINO's own tools make it: NNCF's ``compress_weights`` on OpenVINO's model.

The portable weight-only files (``weight_only_ort``, ``weight_only_nncf``) are ONNX, which every CPU engine
runs. This writer is what a user of OpenVINO's tools gets: the ONNX file read by OpenVINO
(``read_model``), its MatMul weights compressed by NNCF on that ``ov.Model`` (where NNCF's ONNX writer's
faults with asymmetric 4-bit zero points and MatMulNBits do not arise), stored as an ``.xml`` + ``.bin``
pair that only the OpenVINO backends run. Layers are kept by their ONNX node names, which OpenVINO
keeps as its layer names (a node it splits under ``<node>/...``).
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from workbench.data.dataset import Dataset
from workbench.errors import BackendUnavailable, BuildError
from workbench.messages import library_message
from workbench.precision.nncf_int8 import INSTALL_HINT
from workbench.precision.nncf_openvino import openvino_names
from workbench.precision.quantizers import NATIVE_LABEL
from workbench.precision.weight_layers import LayerPlan
from workbench.precision.weight_only_nncf import compress_options
from workbench.progress import Progress


def compress_weights_openvino(
    src: Path,
    dst: Path,
    plan: LayerPlan,
    bits: int,
    *,
    ratio: float,
    block_size: int,
    symmetric: bool,
    algorithm: str,
    backup: str,
    calib: Dataset | None,
    progress: Progress,
) -> list[str]:
    """Write NNCF's weight-compressed OpenVINO model of ``src`` to ``dst`` (``.xml`` with its ``.bin``); notes.

    The layers ``plan`` keeps stay FP32 (in 4 bits, the last layer goes to the backup precision, as NNCF does
    by default); the embedding tables stay FP32 as in the portable files, so the variants compare."""
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise BackendUnavailable(f"The {NATIVE_LABEL} weight-only writer is unavailable.", INSTALL_HINT) from exc
    if dst.suffix != ".xml":
        raise BuildError(f"The {NATIVE_LABEL} weight-only file is OpenVINO IR and needs an .xml name, not {dst.name}.",
                         "Build it through the pipeline, which names it.")
    logging.getLogger("nncf").setLevel(logging.ERROR)
    ov_model = ov.Core().read_model(str(src))
    kept = [layer.name for layer in plan.kept if bits == 8 or layer.name != plan.last]
    ignored = openvino_names(ov_model, [*kept, *plan.embeddings], strict=False)
    options = compress_options(nncf, bits, ratio=ratio, block_size=block_size, symmetric=symmetric,
                            algorithm=algorithm, backup=backup, last_kept=plan.last is not None, calib=calib)
    progress.report("quantize", 0.1, f"NNCF on OpenVINO's model: weights to {bits} bits")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars and tables would spoil `--json`
            compressed = nncf.compress_weights(ov_model, ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
                                               **options)
    except Exception as exc:  # NNCF raises many types; the message is what the user needs
        raise BuildError(f"NNCF could not compress OpenVINO's model: {library_message(exc)}",
                         "Use the portable file (drop weight_writer, or weight_writer=nncf).") from exc
    ov.save_model(compressed, str(dst), compress_to_fp16=False)
    progress.report("quantize", 1.0, "NNCF weight compression done")
    return [f"{NATIVE_LABEL} {bits}-bit weights: NNCF {nncf.__version__} compress_weights "
            f"({options['mode'].value}) on OpenVINO {ov.__version__.split('-')[0]}'s own model"
            + (", AWQ with scale estimation on calibration data" if options.get("awq") else "")
            + "; stored as OpenVINO IR, runs on the OpenVINO backends only"]
