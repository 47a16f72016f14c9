"""End to end through the HTTP server, run inside an mxnet environment: deploy, serve, hot swap; a bare folder.

The backend declares ``isolation="process"``, so the server runs each version in
a worker process. ``environment: {python: ...}`` names this very interpreter
(it has mxnet, modelcore and this plugin), so no worker environment is built.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from modelcore.plugins import get_plugin_manager
from modelcore.server import MANAGER, create_app
from modelcore.server.app import STARTUP
from modelcore.spec import parse_spec
from modelcore_mxnet import deploy_mxnet_model
from modelcore_mxnet.testing import (
    mlp_block,
    mlp_module,
    mlp_reference,
    mlp_weights,
    save_bare_checkpoint,
)

mx = pytest.importorskip("mxnet")

W1 = mlp_weights(seed=1)
W2 = mlp_weights(seed=2)
X = [1.0, -2.0, 0.5]
Y = [0.0, 3.0, -1.0]


def labelled():
    # A user function answering JSON text, which the server returns as JSON.
    def predict(module, xs):
        scores = module.predict(mx.nd.array(np.stack(xs))).asnumpy()
        return [json.dumps({"label": int(row.argmax()), "scores": row.tolist()}) for row in scores]

    return predict


WORKER = f"environment: {{python: {sys.executable}}}"


async def start(aiohttp_client, store: Path, apis: str):
    text = f"store: {store}\napis:\n{apis}"
    app = create_app(parse_spec(text, str(store.parent / "spec.yaml")), pm=get_plugin_manager())
    client = await aiohttp_client(app)
    await asyncio.wait_for(asyncio.shield(app[STARTUP]), 60)
    return app, client


async def predict(client, api: str, payload: dict) -> dict:
    resp = await client.post(f"/{api}/predict", data=json.dumps(payload))
    body = await resp.json()
    assert resp.status == 200, body
    return body


def close(actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-5, atol=1e-6)


async def test_deploy_serve_and_swap_to_a_new_version(aiohttp_client, tmp_path: Path) -> None:
    store = tmp_path / "models"
    assert deploy_mxnet_model(store, "mlp", labelled(), mlp_module(W1, softmax=True)) == 1
    assert deploy_mxnet_model(store, "net", None, mlp_block(W1), [("data", (1, 3))]) == 1
    app, client = await start(
        aiohttp_client,
        store,
        f"  - {{name: classify, model: mlp, input_type: doubles, {WORKER}}}\n"
        f"  - {{name: score, model: net, input_type: floats, {WORKER}}}\n",
    )
    body = await predict(client, "classify", {"input": X})
    want = mlp_reference(W1, [X], softmax=True)[0]
    assert body["output"]["label"] == int(want.argmax()) and body["default"] is False
    close(body["output"]["scores"], want)
    body = await predict(client, "score", {"input_batch": [X, Y]})
    close([p["output"] for p in body["batch_predictions"]], mlp_reference(W1, [X, Y]))

    assert deploy_mxnet_model(store, "mlp", labelled(), mlp_module(W2, softmax=True)) == 2
    assert deploy_mxnet_model(store, "net", None, mlp_block(W2), [("data", (1, 3))]) == 2
    await app[MANAGER].refresh("mlp")
    await app[MANAGER].refresh("net")
    body = await predict(client, "classify", {"input": X})
    close(body["output"]["scores"], mlp_reference(W2, [X], softmax=True)[0])
    body = await predict(client, "score", {"input": Y})
    close(body["output"], mlp_reference(W2, [Y])[0])
    body = await predict(client, "score", {"input": Y, "version": 1})
    close(body["output"], mlp_reference(W1, [Y])[0])


async def test_a_bare_checkpoint_folder_is_served(aiohttp_client, tmp_path: Path) -> None:
    store = tmp_path / "models"
    (store / "bare" / "1").mkdir(parents=True)
    save_bare_checkpoint(W1, str(store / "bare" / "1" / "mlp"), epoch=3, softmax=True)
    app, client = await start(
        aiohttp_client, store, f"  - {{name: bare, model: bare, backend: mxnet, {WORKER}}}\n"
    )
    body = await predict(client, "bare", {"input": X})
    close(body["output"], mlp_reference(W1, [X], softmax=True)[0])
    body = await predict(client, "bare", {"input_batch": [X, Y, X]})
    close([p["output"] for p in body["batch_predictions"]], mlp_reference(W1, [X, Y, X], True))

    # A new bare version appears whole (renamed into place), as a careful writer publishes it.
    staging = store / "bare" / ".incoming"
    staging.mkdir()
    save_bare_checkpoint(W2, str(staging / "mlp"), epoch=7, softmax=True)
    staging.rename(store / "bare" / "2")
    await app[MANAGER].refresh("bare")
    body = await predict(client, "bare", {"input": X})
    close(body["output"], mlp_reference(W2, [X], softmax=True)[0])
