"""Metrics, management routes and tokens, limits, timeouts, OpenAPI with schemathesis."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import modelcore
from modelcore.errors import ModelUnavailable
from modelcore.plugins import get_plugin_manager
from modelcore.server import MANAGER, create_app
from modelcore.server.app import STARTUP
from modelcore.spec import parse_spec
from modelcore.testing import ServerProcess


def const(k):
    return lambda xs: [k for _ in xs]


def slow(xs):
    import time

    time.sleep(0.5)
    return ["done" for _ in xs]


async def post(client, path, payload, headers=None):
    resp = await client.post(path, data=json.dumps(payload), headers=headers or {})
    return resp.status, await resp.json(), resp.headers


async def test_metrics_count_requests_loads_swaps_batches_and_cache(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    client = await serve(
        "- {name: m, model: m, cache: {max_bytes: 1MB}, batching: {max_batch_size: 8}}"
    )
    for _ in range(3):
        assert (await post(client, "/m/predict", {"input": [1.0]}))[0] == 200
    assert (await post(client, "/m/predict", {"input": "bad"}))[0] == 400
    modelcore.deploy_python_closure(store_dir, "m", const(2))
    deadline = time.monotonic() + 15
    while (await post(client, "/m/predict", {"input": [2.0]}))[1]["output"] != 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    text = await resp.text()
    assert 'modelcore_requests_total{code="200",model="",route="/m/predict"}' in text
    assert 'modelcore_request_errors_total{code="400",model="",route="/m/predict"} 1.0' in text
    assert 'modelcore_load_seconds_count{model="m"} 2.0' in text
    assert 'modelcore_swaps_total{model="m"} 1.0' in text
    assert 'modelcore_batch_size_count{model="m"}' in text
    assert 'modelcore_queue_seconds_count{model="m"}' in text
    assert 'modelcore_compute_seconds_bucket{le="0.0005",model="m",version="1"}' in text
    hits = re.search(r'modelcore_cache_hits_total\{api="m"\} ([0-9.]+)', text)
    assert hits is not None and float(hits.group(1)) >= 2
    assert 'modelcore_serving_version{model="m"} 2.0' in text
    assert 'modelcore_models_loaded{model="m"}' in text


async def test_every_route_is_metered_and_unmatched_requests_answer_json(
    store_dir: Path, serve
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    client = await serve("- {name: m, model: m}")
    assert (await post(client, "/m/predict", {"input": [1.0]}))[0] == 200
    assert (await client.get("/v2/models/m")).status == 200
    assert (await client.get("/v2/models/nobody")).status == 404
    resp = await client.get("/m/predict")  # the route exists, not for GET
    assert resp.status == 405 and resp.headers["Allow"] == "POST"
    assert (await resp.json())["error"] == "Method Not Allowed"
    resp = await client.delete("/v2/health/live")
    assert resp.status == 405 and set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
    resp = await client.post("/nowhere/at/all", data=b"{}")
    assert resp.status == 404 and resp.content_type == "application/json"
    assert (await resp.json())["error"] == "no route POST /nowhere/at/all"
    resp = await client.get("/")
    assert resp.status == 404 and (await resp.json())["error"] == "no route GET /"
    text = await (await client.get("/metrics")).text()
    assert 'modelcore_requests_total{code="200",model="",route="/m/predict"} 1.0' in text
    assert 'modelcore_requests_total{code="200",model="m",route="/v2/models/{name}"} 1.0' in text
    # a name that is not served is not a label: URLs cannot make series without bound
    assert 'modelcore_requests_total{code="404",model="",route="/v2/models/{name}"} 1.0' in text
    assert 'modelcore_requests_total{code="405",model="",route="unmatched"} 2.0' in text
    assert 'modelcore_requests_total{code="404",model="",route="unmatched"} 2.0' in text
    assert 'modelcore_request_seconds_count{route="/m/predict"} 1.0' in text


async def test_repository_unload_keeps_a_model_unloaded_until_loaded(
    store_dir: Path, serve
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    client = await serve("- {name: m, model: m}")  # loopback and no admin token: allowed
    resp = await client.post("/v2/repository/models/m/unload")
    assert resp.status == 200 and (await resp.json())["unloaded"] is True
    status, body, _ = await post(client, "/m/predict", {"input": [1.0]})
    assert status == 503 and "unloaded through the repository API" in body["error"]
    modelcore.deploy_python_closure(store_dir, "m", const(2))  # a new version does not reload it
    await asyncio.sleep(0.5)
    assert (await post(client, "/m/predict", {"input": [1.0]}))[0] == 503
    index = await (await client.post("/v2/repository/index")).json()
    assert {e["version"] for e in index} == {"1", "2"} and not any(e["serving"] for e in index)
    resp = await client.post("/v2/repository/models/m/load")
    assert resp.status == 200 and (await resp.json())["version"] == "2"
    assert (await post(client, "/m/predict", {"input": [1.0]}))[1]["output"] == 2
    resp = await client.post("/v2/repository/models/nope/load")
    assert resp.status == 404


async def test_management_needs_the_admin_token(
    store_dir: Path, serve, monkeypatch, caplog
) -> None:
    secret = "s3cr3t-admin-token-value"
    monkeypatch.setenv("MODELCORE_ADMIN_TOKEN", secret)
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    client = await serve("- {name: m, model: m}")
    caplog.set_level(logging.DEBUG)
    resp = await client.post("/v2/repository/models/m/unload")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
    assert "needs a bearer token" in (await resp.json())["error"]
    resp = await client.post(
        "/v2/repository/models/m/unload", headers={"Authorization": "Bearer wrong"}
    )
    assert resp.status == 401 and "not valid" in (await resp.json())["error"]
    resp = await client.post(
        "/v2/repository/models/m/unload", headers={"Authorization": f"Bearer {secret}"}
    )
    assert resp.status == 200
    assert secret not in caplog.text


async def test_management_is_off_off_loopback_without_a_token(
    store_dir: Path, aiohttp_client
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    loaded = parse_spec(
        f"store: {store_dir}\nserver: {{host: 0.0.0.0}}\napis:\n  - {{name: m, model: m}}\n",
        str(store_dir / "spec.yaml"),
    )
    client = await aiohttp_client(create_app(loaded, pm=get_plugin_manager()))
    assert (await client.post("/v2/repository/models/m/unload")).status in (404, 405)


async def test_predict_routes_can_require_a_token(store_dir: Path, serve, monkeypatch) -> None:
    monkeypatch.setenv("MODELCORE_PREDICT_TOKEN", "p-token")
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    client = await serve("- {name: m, model: m}")
    status, _body, headers = await post(client, "/m/predict", {"input": [1.0]})
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    ok = {"Authorization": "Bearer p-token"}
    assert (await post(client, "/m/predict", {"input": [1.0]}, ok))[1]["output"] == 1
    infer = {"inputs": [{"name": "input0", "shape": [1, 1], "datatype": "FP64", "data": [1.0]}]}
    assert (await client.post("/v2/models/m/infer", json=infer)).status == 401
    assert (await client.post("/v2/models/m/infer", json=infer, headers=ok)).status == 200
    assert (await client.get("/v2/health/ready")).status == 200  # health stays open


async def test_queue_limit_answers_503_with_retry_after(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", slow)
    client = await serve("- {name: m, model: m, threads: 1, max_queue: 1}")
    answers = await asyncio.gather(
        *(post(client, "/m/predict", {"input": [1.0]}) for _ in range(4))
    )
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200, 200, 503, 503], statuses
    refused = [(body, headers) for status, body, headers in answers if status == 503]
    assert all(h["Retry-After"] == "1" and "limit is 1" in b["error"] for b, h in refused)


async def test_request_timeout_answers_504(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", slow)
    client = await serve("- {name: m, model: m}", server_yaml="server: {request_timeout_s: 0.1}")
    status, body, _ = await post(client, "/m/predict", {"input": [1.0]})
    assert status == 504 and "request timeout of 0.1s" in body["error"]


async def test_a_timed_out_prediction_holds_its_version_until_its_thread_ends(
    store_dir: Path, serve
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", slow)
    client = await serve("- {name: m, model: m}", server_yaml="server: {request_timeout_s: 0.1}")
    status, _, _ = await post(client, "/m/predict", {"input": [1.0]})
    assert status == 504
    lv = client.app[MANAGER].slots["m"].latest
    assert lv.inflight == 1  # the model still runs in its thread: the version must stay loaded
    await asyncio.sleep(0.6)
    assert lv.inflight == 0


async def test_predictions_queued_at_shutdown_answer_unavailable(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", slow)
    client = await serve("- {name: m, model: m, threads: 1}")
    manager = client.app[MANAGER]
    lv = await manager.resolve("m")
    futures = [manager.submit(lv, [np.ones(1)]) for _ in range(3)]
    await manager.close()
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == ["done"]  # it was running: it finishes
    assert all(isinstance(r, ModelUnavailable) for r in results[1:]), results


@pytest.mark.slow
def test_openapi_document_and_schemathesis_finds_no_server_errors(
    store_dir: Path, tmp_path: Path
) -> None:
    modelcore.deploy_python_closure(store_dir, "add1", lambda xs: [float(x[0]) + 1 for x in xs])
    modelcore.deploy_python_closure(store_dir, "echo", lambda xs: xs, input_type="strings")
    spec = (
        f"store: {store_dir}\nserver: {{port: PORT, max_body_bytes: 20000}}\napis:\n"
        "  - {name: add1, model: add1}\n  - {name: echo, model: echo, input_type: strings}\n"
    )
    with ServerProcess(spec, tmp_path) as server:
        with urllib.request.urlopen(f"{server.base}/openapi.json") as resp:
            document = json.loads(resp.read())
        assert document["openapi"].startswith("3.") and "/add1/predict" in document["paths"]
        assert "/v2/models/{name}/infer" in document["paths"]
        st = Path(sys.executable).parent / "st"
        run = subprocess.run(
            [
                str(st),
                "run",
                f"{server.base}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--request-timeout",
                "10",
                "--workers",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
        )
        out = run.stdout + run.stderr
        # The finding this test is about: a 5xx (ST101). Other non-zero exits are the
        # generator's own trouble (CPython 3.11.7 can fail inside hypothesis while it
        # describes a strategy: "AST constructor recursion depth mismatch").
        assert "ST101" not in out and "Server error" not in out, out[-4000:]
        assert "test cases:" in out.lower() or "generated" in out, out[-4000:]
        assert server.proc.poll() is None  # the server is still up
        request = urllib.request.Request(f"{server.base}/add1/predict", data=b'{"input": [1.0]}')
        with urllib.request.urlopen(request) as resp:
            assert json.loads(resp.read())["output"] == 2.0


async def test_sigterm_drains_in_flight_requests(store_dir: Path, tmp_path: Path) -> None:
    """A request running when SIGTERM arrives still gets its answer; then the server exits 0."""
    modelcore.deploy_python_closure(store_dir, "m", slow)
    spec = f"store: {store_dir}\nserver: {{port: PORT}}\napis:\n  - {{name: m, model: m}}\n"
    loop = asyncio.get_running_loop()
    server = await loop.run_in_executor(None, ServerProcess(spec, tmp_path).__enter__)
    try:

        def call() -> dict:
            req = urllib.request.Request(f"{server.base}/m/predict", data=b'{"input": [1.0]}')
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())

        pending = loop.run_in_executor(None, call)
        await asyncio.sleep(0.2)
        server.proc.send_signal(signal.SIGTERM)
        assert (await pending)["output"] == "done"
        assert await loop.run_in_executor(None, server.proc.wait, 30) == 0
    finally:
        server.stop()


async def test_require_signed_rejects_unsigned_at_the_server(store_dir: Path, monkeypatch) -> None:
    """Covered in depth by test_integrity; here: the server app refuses without a key."""
    from modelcore.errors import SpecError

    monkeypatch.delenv("MODELCORE_SIGNING_KEY", raising=False)
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    loaded = parse_spec(
        f"store: {store_dir}\nserver: {{require_signed: true}}\napis:\n  - {{name: m, model: m}}\n",
        "s.yaml",
    )
    with pytest.raises(SpecError, match=r"server\.require_signed"):
        create_app(loaded, pm=get_plugin_manager())
    assert MANAGER and STARTUP  # the app keys stay importable for plugin tests
