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


def scaled(factor):
    """A linear scorer; two versions of it make the ensemble example."""

    def score(xs):
        return [float(factor * sum(x)) for x in xs]

    return score


def sentiment_net():
    """A tiny PyTorch classifier over the word counts of specs/steps.py (negative, neutral, positive)."""
    import torch

    net = torch.nn.Linear(8, 3)
    with torch.no_grad():
        net.weight.copy_(
            torch.tensor(
                [
                    [0, 0, 0, 0, 2, 2, 2, 2],
                    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
                    [2, 2, 2, 2, 0, 0, 0, 0],
                ]
            )
        )
        net.bias.copy_(torch.tensor([0.0, 0.6, 0.0]))
    return net.eval()


def main(store: str) -> None:
    print(f"add1 v{modelcore.deploy_python_closure(store, 'add1', add1, input_type='doubles')}")
    print(
        f"sentiment v{modelcore.deploy_python_closure(store, 'sentiment', sentiment, input_type='strings')}"
    )
    for factor in (1.0, 3.0):
        print(f"scorer v{modelcore.deploy_python_closure(store, 'scorer', scaled(factor))}")
    try:
        from modelcore_pytorch import deploy_pytorch_model
    except ImportError:
        print("modelcore-pytorch is not installed: the sentiment-pipeline example is skipped")
        return
    print(
        f"sentiment-net v{deploy_pytorch_model(store, 'sentiment-net', None, sentiment_net(), input_type='floats')}"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models")
