"""Embeddings: sentence cosine of pooled vectors and per-token cosine over real tokens only.

Padding positions carry no meaning but large, easily matched vectors; counting them inflates the
cosine, so tokens are weighted by the model's ``attention_mask`` input wherever it has one.
"""

from __future__ import annotations

import numpy as np

from workbench.tasks.base import Outputs, cosine_rows
from workbench.tasks.evidence import Evidence

POOLINGS = ("mean", "cls")


def token_output(outputs: Outputs) -> np.ndarray | None:
    return next((a for a in outputs.values() if a.ndim == 3), None)


def attention_mask(inputs: Outputs, tokens: np.ndarray) -> np.ndarray:
    """The real-token mask ``[N, T]``; all ones where the model takes none."""
    for name, array in inputs.items():
        if "mask" in name.lower() and array.shape == tokens.shape[:2]:
            return array.astype(np.float64)
    return np.ones(tokens.shape[:2])


def pooled(tokens: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    if pooling == "cls":
        return tokens[:, 0].astype(np.float64)
    weights = mask[:, :, None]
    return (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


class EmbeddingMeter:
    def __init__(self, pooling: str = "mean") -> None:
        self.pooling = pooling
        self.sentence: list[np.ndarray] = []
        self.token_sum = 0.0
        self.tokens = 0
        self.padded_token_sum = 0.0
        self.padded_tokens = 0

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        ref_tokens, var_tokens = token_output(reference), token_output(variant)
        if ref_tokens is None:
            ref = next(a for a in reference.values() if a.ndim == 2)
            var = next(a for a in variant.values() if a.ndim == 2)
            self.sentence.append(cosine_rows(ref, var))
            return
        mask = attention_mask(inputs, ref_tokens)
        ref, var = pooled(ref_tokens, mask, self.pooling), pooled(var_tokens, mask, self.pooling)
        self.sentence.append(cosine_rows(ref, var))
        flat = ref_tokens.shape[0] * ref_tokens.shape[1]
        per_token = cosine_rows(ref_tokens.reshape(flat, -1), var_tokens.reshape(flat, -1))
        real = mask.reshape(-1) > 0
        self.token_sum += float(per_token[real].sum())
        self.tokens += int(real.sum())
        self.padded_token_sum += float(per_token.sum())
        self.padded_tokens += flat

    def evidence(self) -> Evidence:
        return Evidence.mean(np.concatenate(self.sentence) if self.sentence else np.ones(1))

    def figures(self) -> dict:
        sentence = np.concatenate(self.sentence) if self.sentence else np.ones(1)
        token = self.token_sum / self.tokens if self.tokens else None
        return {"metric": "sentence_cosine", "value": float(sentence.mean()), "sentence_cosine": float(sentence.mean()),
                "min_sentence_cosine": float(sentence.min()), "pooling": self.pooling,
                "token_cosine": token, "token_cosine_with_padding":
                self.padded_token_sum / self.padded_tokens if self.padded_tokens else None}
