"""End to end through the HTTP server: a deployed Keras model hot-swapped to v2, and bare SavedModels."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

import modelcore
from modelcore.plugins import get_plugin_manager
from modelcore.server import MANAGER, create_app
from modelcore.server.app import STARTUP
from modelcore.spec import parse_spec
from modelcore_tensorflow import deploy_tensorflow_model


async def _serve(aiohttp_client, store: Path, apis: str):
    text = f"store: {store}\napis:\n" + textwrap.indent(textwrap.dedent(apis), "  ")
    app = create_app(parse_spec(text, str(store / "spec.yaml")), pm=get_plugin_manager())
    client = await aiohttp_client(app)
    await asyncio.wait_for(asyncio.shield(app[STARTUP]), 60)
    return app, client


async def _predict(client, route: str, payload: dict) -> tuple[int, dict]:
    resp = await client.post(route, json=payload)
    return resp.status, await resp.json()


def _rounded(model, xs):
    return [[round(float(v), 4) for v in row] for row in model(np.stack(xs))]


async def test_deploy_serve_and_hot_swap_to_v2(tmp_path: Path, aiohttp_client, models) -> None:
    store = tmp_path / "models"
    assert deploy_tensorflow_model(store, "dense", _rounded, models.dense()) == 1
    app, client = await _serve(aiohttp_client, store, "- {name: dense, model: dense}")
    x = [1.0, 2.0, 3.0]
    status, body = await _predict(client, "/dense/predict", {"input": x})
    assert status == 200, body
    np.testing.assert_allclose(body["output"], models.dense_expected([x])[0], rtol=1e-4)
    status, body = await _predict(client, "/dense/predict", {"input_batch": [x, [0, 0, 0]]})
    assert status == 200
    np.testing.assert_allclose(
        [p["output"] for p in body["batch_predictions"]],
        models.dense_expected([x, [0, 0, 0]]),
        rtol=1e-4,
    )

    # deploy() without a backend claims the Keras model; the store watcher's refresh swaps it in.
    v2 = modelcore.deploy(store, "dense", _rounded, model=models.dense(models.W2, models.B2))
    assert v2 == 2
    await app[MANAGER].refresh("dense")
    status, body = await _predict(client, "/dense/predict", {"input": x})
    assert status == 200
    np.testing.assert_allclose(
        body["output"], models.dense_expected([x], models.W2, models.B2)[0], rtol=1e-4
    )
    status, body = await _predict(client, "/dense/predict", {"input": x, "version": 1})
    np.testing.assert_allclose(body["output"], models.dense_expected([x])[0], rtol=1e-4)


@pytest.mark.parametrize("layout", ["tf_serving", "saved_model_subfolder"])
async def test_bare_saved_model_folder_serves_through_its_signature(
    tmp_path: Path, aiohttp_client, exported_dense: Path, models, layout: str
) -> None:
    store = tmp_path / "models"
    # No manifest, no function: <model>/<version>/saved_model.pb as TF Serving reads it.
    target = store / "bare" / "1"
    shutil.copytree(exported_dense, target if layout == "tf_serving" else target / "saved_model")
    _, client = await _serve(
        aiohttp_client, store, "- {name: bare, model: bare, backend: tensorflow, device: auto}"
    )
    rows = [[1.0, 2.0, 3.0], [-1.0, 0.0, 0.5]]
    status, body = await _predict(client, "/bare/predict", {"input_batch": rows})
    assert status == 200, body
    outputs = [p["output"] for p in body["batch_predictions"]]
    np.testing.assert_allclose(outputs, models.dense_expected(rows), rtol=1e-5)
    status, body = await _predict(client, "/bare/predict", {"input": [1.0, 2.0]})
    assert status == 400
    assert "'x' takes (None, 3), got inputs of shape (2,)" in body["error"]
