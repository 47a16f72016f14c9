"""End to end through the HTTP server: deploy, serve, deploy again, refresh; and a bare save."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from modelcore.plugins import get_plugin_manager
from modelcore.server import MANAGER, create_app
from modelcore.server.app import STARTUP
from modelcore.spec import parse_spec
from modelcore_pyspark import deploy_pyspark_model
from modelcore_pyspark.testing import probability_of_one

HIGH, LOW = [0.9, 0.8], [0.1, 0.2]


def _rounded(spark, model, inputs):
    return [round(p, 3) for p in probability_of_one(spark, model, inputs)]


async def _start(aiohttp_client: Any, tmp_path: Path, store: Path, apis: str) -> tuple[Any, Any]:
    text = f"store: {store}\napis:\n{apis}"
    app = create_app(parse_spec(text, str(tmp_path / "spec.yaml")), pm=get_plugin_manager())
    client = await aiohttp_client(app)
    await asyncio.wait_for(asyncio.shield(app[STARTUP]), 120)
    return app, client


async def _predict(client: Any, api: str, payload: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(f"/{api}/predict", data=json.dumps(payload))
    body = await resp.json()
    assert resp.status == 200, body
    return body


@pytest.mark.usefixtures("spark")
async def test_deploy_serve_and_hot_swap_a_new_version(
    aiohttp_client: Any, tmp_path: Path, trained: Any
) -> None:
    store = tmp_path / "models"
    assert deploy_pyspark_model(store, "clf", _rounded, trained.v1) == 1
    app, client = await _start(
        aiohttp_client, tmp_path, store, "  - {name: clf, model: clf, input_type: doubles}\n"
    )
    body = await _predict(client, "clf", {"input": HIGH})
    assert body["output"] > 0.5 and body["default"] is False
    body = await _predict(client, "clf", {"input_batch": [HIGH, LOW]})
    high, low = (p["output"] for p in body["batch_predictions"])
    assert high > 0.5 > low

    # v2 learned the opposite labels: the same input now scores low.
    assert deploy_pyspark_model(store, "clf", _rounded, trained.v2) == 2
    await app[MANAGER].refresh("clf")
    body = await _predict(client, "clf", {"input": HIGH})
    assert body["output"] < 0.5
    body = await _predict(client, "clf", {"input": HIGH, "version": 1})
    assert body["output"] == high


async def test_a_bare_native_save_is_served_with_the_default_predict(
    aiohttp_client: Any, tmp_path: Path, trained: Any
) -> None:
    store = tmp_path / "models"
    (store / "bare").mkdir(parents=True)
    # The version folder is the native save itself (metadata/ names the class).
    trained.classifier.write().save(str(store / "bare" / "1"))
    app, client = await _start(
        aiohttp_client, tmp_path, store, "  - {name: bare, model: bare, backend: pyspark}\n"
    )
    body = await _predict(client, "bare", {"input": HIGH})
    assert body["output"]["prediction"] == 1.0
    assert len(body["output"]["probability"]) == 2 and body["output"]["probability"][1] > 0.5
    body = await _predict(client, "bare", {"input_batch": [LOW, HIGH, LOW]})
    assert [p["output"]["prediction"] for p in body["batch_predictions"]] == [0.0, 1.0, 0.0]

    # A whole pipeline appears as version 2 (renamed into place, as a careful writer publishes).
    staging = store / "bare" / ".incoming"
    trained.v2.write().save(str(staging))
    staging.rename(store / "bare" / "2")
    await app[MANAGER].refresh("bare")
    body = await _predict(client, "bare", {"input": HIGH})
    assert body["output"]["prediction"] == 0.0
