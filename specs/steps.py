"""Pipeline steps for specs/api.yaml: text in -> word counts -> (torch model) -> a label out.

Each step takes a list and returns a list of the same length.
"""

from __future__ import annotations

import json

import numpy as np

VOCAB = ["good", "great", "love", "excellent", "bad", "awful", "hate", "terrible"]
LABELS = ["negative", "neutral", "positive"]


def tokenize(texts: list[str]) -> list[np.ndarray]:
    """Each text as the counts of the vocabulary's words (float32, what the model takes)."""
    return [
        np.array([t.lower().replace(",", " ").split().count(w) for w in VOCAB], dtype=np.float32)
        for t in texts
    ]


def postprocess(logits: list[list[float]]) -> list[str]:
    """Each row of logits as a label and its softmax confidence."""
    out = []
    for row in logits:
        scores = np.exp(np.asarray(row) - np.max(row))
        scores /= scores.sum()
        best = int(np.argmax(scores))
        out.append(json.dumps({"label": LABELS[best], "confidence": round(float(scores[best]), 4)}))
    return out
