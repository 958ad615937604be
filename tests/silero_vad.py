"""silero-vad's ONNX files (from its PyPI package, installed without its torch dependency) and real speech.

The speech is synthesized by Debian's espeak-ng, resampled to 16 kHz, with silence between the
sentences, cut into the model's 512-sample chunks (plus the 64 samples of context the model reads
before each), and each chunk's recurrent state is the one the FP32 model itself carries into it
when run over the audio in order, as silero-vad's own wrapper does.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

RATE = 16_000
CHUNK, CONTEXT = 512, 64
EVAL_TEXT = ("Voice activity detection finds the parts of a recording where someone speaks. "
             "It keeps quiet stretches out of the transcript.")
CALIB_TEXT = ("The quick brown fox jumps over the lazy dog. A calibration set should look like "
              "the audio the model hears in use.")


def silero_file(name: str = "silero_vad.onnx") -> Path:
    """A model file shipped inside the silero-vad package; skips when the package is not installed."""
    try:
        dist = importlib.metadata.distribution("silero-vad")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("silero-vad is not installed (make install adds it with pip install --no-deps silero-vad)")
    found = [f for f in dist.files or [] if str(f).endswith(f"/{name}")]
    if not found:
        pytest.skip(f"this silero-vad release ({dist.version}) ships no {name}")
    return Path(dist.locate_file(found[0]))


def speech(text: str, folder: Path) -> np.ndarray:
    """16 kHz mono float32 audio of ``text`` spoken by espeak-ng, with 0.6 s of near-silence after each sentence."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from scipy.signal import resample_poly

    rng = np.random.default_rng(0)
    pieces = []
    for index, sentence in enumerate(s for s in text.split(". ") if s):
        wav = folder / f"sentence{index}.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str(wav), sentence], check=True,
                       capture_output=True)
        with wave.open(str(wav)) as handle:
            rate = handle.getframerate()
            audio = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16) / 32768.0
        pieces += [resample_poly(audio, RATE, rate), rng.normal(0, 1e-3, int(0.6 * RATE))]
    return np.concatenate(pieces).astype(np.float32)


def chunks_with_states(model: Path, audio: np.ndarray) -> dict[str, np.ndarray]:
    """The model's inputs for every chunk, each with the state the FP32 model carries into it."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    count = len(audio) // CHUNK
    padded = np.concatenate([np.zeros(CONTEXT, np.float32), audio])
    inputs = np.stack([padded[i * CHUNK:i * CHUNK + CONTEXT + CHUNK] for i in range(count)])
    states = np.zeros((2, count, 128), np.float32)
    state, sr = np.zeros((2, 1, 128), np.float32), np.array(RATE, np.int64)
    for i in range(count):
        states[:, i:i + 1] = state
        _, state = session.run(None, {"input": inputs[i:i + 1], "state": state, "sr": sr})
    return {"input": inputs, "state": states, "sr": sr}


def write_data(model: Path, folder: Path) -> tuple[Path, Path]:
    """calib.npz and eval.npz of real speech (different sentences) beside a copy of nothing: paths returned."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for role, text in (("calib", CALIB_TEXT), ("eval", EVAL_TEXT)):
        path = folder / f"{role}.npz"
        np.savez(path, **chunks_with_states(model, speech(text, folder)))
        paths.append(path)
    return paths[0], paths[1]
