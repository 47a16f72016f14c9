"""Pipelines end to end through HTTP with real models: steps, ensembles, splits, and their errors."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import modelcore
from modelcore.errors import SpecError
from modelcore.plugins import get_plugin_manager
from modelcore.spec import parse_spec
from modelcore.store import ModelStore
from modelcore.validate import check_spec
from modelcore_pytorch import deploy_pytorch_model

STEPS = """
import json
import numpy as np

VOCAB = ["good", "great", "love", "bad", "awful", "hate", "movie", "plot"]


def tokenize(texts):
    return [np.array([t.lower().split().count(w) for w in VOCAB], dtype=np.float32) for t in texts]


def postprocess(logits):
    labels = ["negative", "neutral", "positive"]
    return [json.dumps({"label": labels[int(np.argmax(row))], "logits": [round(float(v), 4) for v in row]})
            for row in logits]


def largest(answers):
    return [max(row) for row in zip(*answers)]


def explode(xs):
    raise RuntimeError("tokenizer exploded")
"""


def make_classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 3)
    with torch.no_grad():
        net.weight.copy_(
            torch.tensor(
                [
                    [0, 0, 0, 2, 2, 2, 0, 0],  # negative
                    [0, 0, 0, 0, 0, 0, 1, 1],  # neutral
                    [2, 2, 2, 0, 0, 0, 0, 0],  # positive
                ],
                dtype=torch.float32,
            )
        )
        net.bias.zero_()
    return net.eval()


def const(k):
    return lambda xs: [k for _ in xs]


def scaled(k):
    return lambda xs: [float(x[0]) * k for x in xs]


@pytest.fixture
def steps_file(tmp_path: Path) -> Path:
    path = tmp_path / "steps.py"
    path.write_text(textwrap.dedent(STEPS))
    return path


async def post(client, path, payload):
    resp = await client.post(path, data=json.dumps(payload))
    return resp.status, await resp.json()


async def test_three_step_pipeline_with_a_torch_model(
    store_dir: Path, steps_file: Path, serve
) -> None:
    deploy_pytorch_model(store_dir, "clf", None, make_classifier(), input_type="floats")
    client = await serve(f"""
        - name: sentiment
          input_type: strings
          batching: {{max_batch_size: 16}}
          pipeline:
            - python: {steps_file}:tokenize
            - model: clf
            - python: {steps_file}:postprocess
    """)
    texts = ["a great great movie", "awful plot, bad movie", "the plot"]
    status, body = await post(client, "/sentiment/predict", {"input_batch": texts})
    assert status == 200, body
    labels = [p["output"]["label"] for p in body["batch_predictions"]]
    assert labels == ["positive", "negative", "neutral"]
    logits = body["batch_predictions"][0]["output"]["logits"]
    expected = make_classifier()(torch.tensor([[0, 2, 0, 0, 0, 0, 1, 0]], dtype=torch.float32))[0]
    np.testing.assert_allclose(logits, expected.detach().numpy(), atol=1e-4)
    # Concurrent requests batch at the model step.
    answers = await asyncio.gather(
        *(post(client, "/sentiment/predict", {"input": t}) for t in texts * 8)
    )
    assert all(s == 200 for s, _ in answers)


async def test_ensembles_combine_mean_vote_concat_and_python(store_dir, steps_file, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "score", scaled(1))
    modelcore.deploy_python_closure(store_dir, "score", scaled(3))
    for name, label in (("v1", "cat"), ("v2", "dog"), ("v3", "cat")):
        modelcore.deploy_python_closure(store_dir, name, const(label))
    modelcore.deploy_python_closure(store_dir, "vec", lambda xs: [[float(x[0]), 1.0] for x in xs])
    client = await serve(f"""
        - name: mean
          pipeline:
            - ensemble: {{models: [{{model: score, version: 1}}, {{model: score, version: 2}}], combine: mean}}
        - name: vote
          pipeline:
            - ensemble: {{models: [v1, v2, v3], combine: vote}}
        - name: concat
          pipeline:
            - ensemble: {{models: [vec, score], combine: concat}}
        - name: largest
          pipeline:
            - ensemble: {{models: [{{model: score, version: 1}}, score], combine: {{python: {steps_file}:largest}}}}
    """)
    assert (await post(client, "/mean/predict", {"input": [2.0]}))[1][
        "output"
    ] == 4.0  # (2 + 6) / 2
    assert (await post(client, "/vote/predict", {"input": [0.0]}))[1]["output"] == "cat"
    assert (await post(client, "/concat/predict", {"input": [5.0]}))[1]["output"] == [
        5.0,
        1.0,
        15.0,
    ]
    _, body = await post(client, "/largest/predict", {"input_batch": [[1.0], [-1.0]]})
    assert [p["output"] for p in body["batch_predictions"]] == [3.0, -1.0]


async def test_split_shares_follow_the_weights_and_keys_stick(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "a", const("a"))
    modelcore.deploy_python_closure(store_dir, "b", const("b"))
    client = await serve("""
        - name: canary
          pipeline:
            - split: [{model: a, weight: 90}, {model: b, weight: 10}]
    """)
    answers = []
    for chunk in range(10):
        batch = await asyncio.gather(
            *(
                post(client, "/canary/predict", {"input": [1.0], "key": f"user-{chunk * 100 + i}"})
                for i in range(100)
            )
        )
        answers += [body["output"] for _, body in batch]
    share = answers.count("a") / len(answers)
    assert len(answers) == 1000 and 0.87 <= share <= 0.93, share
    again = [
        (await post(client, "/canary/predict", {"input": [1.0], "key": "user-7"}))[1]["output"]
        for _ in range(5)
    ]
    assert again == [answers[7]] * 5
    unkeyed = [
        (await post(client, "/canary/predict", {"input": [1.0]}))[1]["output"] for _ in range(200)
    ]
    assert 0.8 <= unkeyed.count("a") / 200 <= 0.98


async def test_errors_name_the_api_and_the_step(store_dir: Path, steps_file: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "ok", const(1.0))
    modelcore.deploy_python_closure(store_dir, "word", const("x"))

    def boom(xs):
        raise ValueError("model exploded")

    modelcore.deploy_python_closure(store_dir, "boom", boom)
    modelcore.deploy_python_closure(store_dir, "gone", const(0))
    client = await serve(f"""
        - name: py
          input_type: strings
          pipeline: [{{python: {steps_file}:explode}}]
        - name: model
          pipeline: [{{model: ok}}, {{model: boom}}]
        - name: ens
          pipeline: [{{ensemble: {{models: [ok, word], combine: mean}}}}]
        - name: spl
          pipeline: [{{split: [{{model: gone, weight: 1}}, {{model: gone, weight: 1}}]}}]
    """)
    status, body = await post(client, "/py/predict", {"input": "text"})
    assert status == 500
    assert body["error"] == (
        f"pipeline 'py' step 0 (python {steps_file}:explode): RuntimeError: tokenizer exploded"
    )
    status, body = await post(client, "/model/predict", {"input": [1.0]})
    assert status == 500 and body["error"].startswith("pipeline 'model' step 1 (model 'boom'): ")
    assert "model exploded" in body["error"]
    status, body = await post(client, "/ens/predict", {"input": [1.0]})
    assert status == 500 and body["error"].startswith(
        "pipeline 'ens' step 0 (ensemble of ok, word (mean)): "
    )
    assert "combine mean needs numbers" in body["error"]
    await client.post("/v2/repository/models/gone/unload")
    status, body = await post(client, "/spl/predict", {"input": [1.0]})
    assert status == 503 and body["error"].startswith(
        "pipeline 'spl' step 0 (split gone 1, gone 1): "
    )
    status, body = await post(client, "/py/predict", {"input": "text", "version": 2})
    assert status == 400 and "unknown field(s) 'version'" in body["error"]


def test_validation_reports_missing_functions_models_and_kinds(
    tmp_path, store_dir, steps_file
) -> None:
    modelcore.deploy_python_closure(store_dir, "ok", const(1.0))
    text = f"""\
store: {store_dir}
apis:
  - name: p
    pipeline:
      - python: {steps_file}:nothing_here
      - model: missing
      - ensemble: {{models: [ok, {{model: ok, version: 9}}], combine: {{python: {tmp_path}/nope.py:f}}}}
      - split: [{{model: ok, weight: 1}}, {{model: ghost, weight: 1}}]
"""
    loaded = parse_spec(text, "p.yaml")
    with pytest.raises(SpecError) as info:
        check_spec(loaded, get_plugin_manager(), ModelStore(loaded.store_url))
    lines = info.value.message.splitlines()
    assert (
        lines[0]
        == f"p.yaml:6: apis.0.pipeline.1.model: model 'missing' is not in the store {store_dir}"
    )
    assert (
        lines[1]
        == "p.yaml:7: apis.0.pipeline.2.ensemble.models.1: model 'ok' has no version 9 in the store"
    )
    assert (
        lines[2]
        == f"p.yaml:8: apis.0.pipeline.3.split.1.model: model 'ghost' is not in the store {store_dir}"
    )
    assert lines[3].startswith("p.yaml:5: apis.0.pipeline.0.python: pipeline function")
    assert "has no 'nothing_here'" in lines[3]
    assert lines[4] == (
        f"p.yaml:7: apis.0.pipeline.2.ensemble: pipeline function file "
        f"{tmp_path}/nope.py does not exist"
    )
    with pytest.raises(
        SpecError, match=r"p.yaml:5: apis.0.pipeline.0: a step is one of: model, python"
    ):
        parse_spec(text.replace("      - python:", "      - transform:"), "p.yaml")
