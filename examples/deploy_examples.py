"""Deploy the example models that specs/api.yaml serves: ``python examples/deploy_examples.py STORE``."""

from __future__ import annotations

import json
import sys

import modelcore


def add1(xs):
    """Clipper's classic: add one to the first element of each input."""
    return [str(x[0] + 1) for x in xs]


POSITIVE = {"good", "great", "love", "excellent", "happy", "fast"}
NEGATIVE = {"bad", "awful", "hate", "terrible", "sad", "slow"}


def sentiment(texts):
    """A word-list sentiment model: returns a JSON object per text."""
    out = []
    for text in texts:
        words = text.lower().split()
        score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
        label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
        out.append(json.dumps({"label": label, "score": score}))
    return out


def main(store: str) -> None:
    print(f"add1 v{modelcore.deploy_python_closure(store, 'add1', add1, input_type='doubles')}")
    print(
        f"sentiment v{modelcore.deploy_python_closure(store, 'sentiment', sentiment, input_type='strings')}"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models")
