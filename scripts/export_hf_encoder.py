"""Export a sentence-transformers encoder folder (Hugging Face layout, safetensors) to ONNX with its pooling.

Dev-time only: needs torch and transformers, never project dependencies. ``benchmarks/zoo.py`` runs it in a
subprocess with both on the path (installed into the zoo's cache) and caches the ONNX file. The graph takes
``input_ids`` and ``attention_mask`` and returns the token embeddings and their masked mean, the sentence
embedding, as the zoo's MiniLM does.

    python scripts/export_hf_encoder.py MODEL_FOLDER OUT.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel


class MeanPooled(nn.Module):
    """The encoder and sentence-transformers' mean pooling over the real (unmasked) tokens."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        return tokens, (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    model = MeanPooled(AutoModel.from_pretrained(str(args.folder), attn_implementation="eager")).eval()
    ids = torch.ones((2, 16), dtype=torch.int64)
    mask = torch.ones((2, 16), dtype=torch.int64)
    dims = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask), str(args.out), input_names=["input_ids", "attention_mask"],
                          output_names=["token_embeddings", "sentence_embedding"], opset_version=17,
                          dynamic_axes={"input_ids": dims, "attention_mask": dims, "token_embeddings": dims,
                                        "sentence_embedding": {0: "batch"}}, dynamo=False)


if __name__ == "__main__":
    main()
