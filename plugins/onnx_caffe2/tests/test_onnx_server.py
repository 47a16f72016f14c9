"""End to end through the HTTP server: deploy, serve, deploy again, refresh; and a bare model.onnx."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from modelcore.plugins import get_plugin_manager, set_plugin_manager
from modelcore.server import MANAGER, create_app
from modelcore.server.app import STARTUP
from modelcore.spec import parse_spec
from modelcore_onnx import deploy_onnx_model
from modelcore_onnx.testing import affine_model

W1 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
W2 = 2 * W1
B = np.array([0.0, 10.0], dtype=np.float32)


@pytest.fixture(autouse=True)
def _fresh_plugin_manager():
    set_plugin_manager(None)
    yield
    set_plugin_manager(None)


def _scores(session, xs):
    (y,) = session.run(["y"], {"x": np.stack(xs).astype(np.float32)})
    return [json.dumps([round(float(v), 4) for v in row]) for row in y]


async def _start(aiohttp_client, tmp_path: Path, store: Path, apis: str):
    text = f"store: {store}\napis:\n{apis}"
    app = create_app(parse_spec(text, str(tmp_path / "spec.yaml")), pm=get_plugin_manager())
    client = await aiohttp_client(app)
    await asyncio.wait_for(asyncio.shield(app[STARTUP]), 60)
    return app, client


async def _predict(client, api: str, payload: dict) -> dict:
    resp = await client.post(f"/{api}/predict", data=json.dumps(payload))
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def test_deploy_serve_and_hot_swap_a_new_version(aiohttp_client, tmp_path: Path) -> None:
    store = tmp_path / "models"
    assert deploy_onnx_model(store, "scorer", _scores, affine_model(W1, B)) == 1
    app, client = await _start(
        aiohttp_client, tmp_path, store, "  - {name: score, model: scorer, input_type: doubles}\n"
    )
    body = await _predict(client, "score", {"input": [1.0, 2.0, 3.0]})
    assert body["output"] == [4.0, 15.0] and body["default"] is False
    body = await _predict(client, "score", {"input_batch": [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]})
    assert [p["output"] for p in body["batch_predictions"]] == [[1.0, 10.0], [1.0, 11.0]]

    assert deploy_onnx_model(store, "scorer", _scores, affine_model(W2, B)) == 2
    await app[MANAGER].refresh("scorer")
    body = await _predict(client, "score", {"input": [1.0, 2.0, 3.0]})
    assert body["output"] == [8.0, 20.0]
    body = await _predict(client, "score", {"input": [1.0, 2.0, 3.0], "version": 1})
    assert body["output"] == [4.0, 15.0]


async def test_a_bare_model_onnx_folder_is_served(aiohttp_client, tmp_path: Path) -> None:
    store = tmp_path / "models"
    (store / "bare" / "1").mkdir(parents=True)
    onnx.save(affine_model(W1, B), store / "bare" / "1" / "model.onnx")
    app, client = await _start(
        aiohttp_client, tmp_path, store, "  - {name: bare, model: bare, backend: onnx}\n"
    )
    body = await _predict(client, "bare", {"input": [1.0, 2.0, 3.0]})
    assert body["output"] == [4.0, 15.0]
    body = await _predict(client, "bare", {"input_batch": [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]})
    assert [p["output"] for p in body["batch_predictions"]] == [[0.0, 10.0], [2.0, 12.0]]

    # A new bare version appears whole (renamed into place), as a careful writer publishes it.
    staging = store / "bare" / ".incoming"
    staging.mkdir()
    onnx.save(affine_model(W2, B), staging / "model.onnx")
    staging.rename(store / "bare" / "2")
    await app[MANAGER].refresh("bare")
    body = await _predict(client, "bare", {"input": [1.0, 2.0, 3.0]})
    assert body["output"] == [8.0, 20.0]
