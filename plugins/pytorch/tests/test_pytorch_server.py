"""End to end through the HTTP server: deploy, serve, hot-swap to v2, and a bare folder."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modelcore.plugins import get_plugin_manager
from modelcore.server import MANAGER, create_app
from modelcore.server.app import STARTUP
from modelcore.spec import parse_spec
from modelcore_pytorch import deploy_pytorch_model

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()


def answer(model: torch.nn.Module, x: list[float]) -> list[float]:
    with torch.no_grad():
        return model(torch.tensor([x], dtype=torch.float32))[0].tolist()


def rounded(model, xs):
    # A user function: JSON text, which the server returns as JSON.
    batch = torch.as_tensor(np.stack(xs), dtype=torch.float32)
    return [json.dumps({"scores": row}) for row in model(batch).tolist()]


async def start(aiohttp_client, store: Path, apis: str):
    text = f"store: {store}\napis:\n{apis}"
    app = create_app(parse_spec(text, str(store.parent / "spec.yaml")), pm=get_plugin_manager())
    client = await aiohttp_client(app)
    await asyncio.wait_for(asyncio.shield(app[STARTUP]), 60)
    return app, client


async def predict(client, route: str, payload: dict) -> dict:
    resp = await client.post(route, data=json.dumps(payload))
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def test_deploy_serve_and_swap_to_a_new_version(aiohttp_client, tmp_path: Path) -> None:
    store = tmp_path / "models"
    x = [1.0, -2.0, 0.5]
    assert deploy_pytorch_model(store, "mlp", None, mlp(1)) == 1
    assert deploy_pytorch_model(store, "scored", rounded, mlp(1)) == 1
    app, client = await start(
        aiohttp_client,
        store,
        "  - {name: mlp, model: mlp, device: auto}\n  - {name: scored, model: scored}\n",
    )
    body = await predict(client, "/mlp/predict", {"input": x})
    np.testing.assert_allclose(body["output"], answer(mlp(1), x), rtol=1e-6)
    assert body["default"] is False
    body = await predict(client, "/scored/predict", {"input_batch": [x, x]})
    outputs = [p["output"]["scores"] for p in body["batch_predictions"]]
    np.testing.assert_allclose(outputs, [answer(mlp(1), x)] * 2, rtol=1e-6)

    assert deploy_pytorch_model(store, "mlp", None, mlp(2)) == 2
    await app[MANAGER].refresh("mlp")
    body = await predict(client, "/mlp/predict", {"input": x})
    np.testing.assert_allclose(body["output"], answer(mlp(2), x), rtol=1e-6)
    assert not np.allclose(answer(mlp(1), x), answer(mlp(2), x))
    body = await predict(client, "/mlp/predict", {"input": x, "version": 1})
    np.testing.assert_allclose(body["output"], answer(mlp(1), x), rtol=1e-6)


@pytest.mark.parametrize("artifact", ["model.pt", "model.pt2"])
async def test_a_bare_folder_is_served_when_the_spec_names_the_backend(
    aiohttp_client, tmp_path: Path, artifact: str
) -> None:
    store = tmp_path / "models"
    version = store / "bare" / "1"
    version.mkdir(parents=True)
    if artifact == "model.pt":
        torch.jit.save(torch.jit.script(mlp(3)), str(version / artifact))
    else:
        batch = torch.export.Dim("batch")
        program = torch.export.export(mlp(3), (torch.zeros(2, 3),), dynamic_shapes=({0: batch},))
        torch.export.save(program, version / artifact)
    _, client = await start(
        aiohttp_client, store, "  - {name: bare, model: bare, backend: pytorch}\n"
    )
    inputs = [[1.0, 2.0, 3.0], [0.0, 0.0, -1.0], [4.0, 4.0, 4.0]]
    body = await predict(client, "/bare/predict", {"input_batch": inputs})
    outputs = [p["output"] for p in body["batch_predictions"]]
    np.testing.assert_allclose(outputs, [answer(mlp(3), x) for x in inputs], rtol=1e-6)
