"""The HTTP server through aiohttp's test client: Clipper's query API, errors, health."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

import modelcore


async def _post(client, path, payload):
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    resp = await client.post(path, data=data)
    return resp.status, await resp.json()


async def test_single_and_batch_predictions(add1_store, serve) -> None:
    client = await serve("- {name: add1, model: add1, input_type: doubles}")
    status, body = await _post(client, "/add1/predict", {"input": [1.0, 2.0]})
    assert status == 200
    assert body == {"query_id": body["query_id"], "output": 2.0, "default": False}
    status, body = await _post(client, "/add1/predict", {"input_batch": [[1.0], [10]]})
    assert status == 200
    assert [p["output"] for p in body["batch_predictions"]] == [2.0, 11.0]
    ids = [p["query_id"] for p in body["batch_predictions"]]
    assert ids[1] == ids[0] + 1


async def test_versions_pinned_by_request_and_by_spec(store_dir, serve) -> None:
    for k in (1, 2, 3):
        modelcore.deploy_python_closure(store_dir, "m", lambda xs, k=k: [k for _ in xs])
    client = await serve("""
        - {name: latest, model: m}
        - {name: pinned, model: m, version: 1}
    """)
    assert (await _post(client, "/latest/predict", {"input": [0.0]}))[1]["output"] == 3
    assert (await _post(client, "/pinned/predict", {"input": [0.0]}))[1]["output"] == 1
    assert (await _post(client, "/latest/predict", {"input": [0.0], "version": 2}))[1][
        "output"
    ] == 2
    assert (await _post(client, "/latest/predict", {"input": [0.0], "version": "2"}))[1][
        "output"
    ] == 2
    status, body = await _post(client, "/latest/predict", {"input": [0.0], "version": 9})
    assert status == 404 and body["error"] == "model 'm' has no version 9"
    status, body = await _post(client, "/latest/predict", {"input": [0.0], "version": -1})
    assert status == 400 and "positive integer" in body["error"]


async def test_outputs_json_strings_numpy_and_plain_strings(store_dir, serve) -> None:
    modelcore.deploy_python_closure(
        store_dir,
        "shapes",
        lambda xs: [
            '{"label": "cat", "p": 0.9}',
            "plain words",
            np.float32(0.5),
            np.arange(3),
            {"k": [1]},
        ][: len(xs)],
    )
    client = await serve("- {name: shapes, model: shapes}")
    _, body = await _post(client, "/shapes/predict", {"input_batch": [[0.0]] * 5})
    assert [p["output"] for p in body["batch_predictions"]] == [
        {"label": "cat", "p": 0.9},
        "plain words",
        0.5,
        [0, 1, 2],
        {"k": [1]},
    ]


async def test_bytes_and_strings_input_types(store_dir, serve) -> None:
    modelcore.deploy_python_closure(
        store_dir, "blen", lambda xs: [len(x) for x in xs], input_type="bytes"
    )
    modelcore.deploy_python_closure(
        store_dir, "upper", lambda xs: [json.dumps(x.upper()) for x in xs], input_type="strings"
    )
    client = await serve("""
        - {name: blen, model: blen, input_type: bytes}
        - {name: upper, model: upper, input_type: strings}
    """)
    payload = base64.b64encode(b"\x00\x01\x02hello").decode()
    assert (await _post(client, "/blen/predict", {"input": payload}))[1]["output"] == 8
    status, body = await _post(client, "/blen/predict", {"input": "%%%"})
    assert status == 400 and "not valid base64" in body["error"]
    assert (await _post(client, "/upper/predict", {"input": "héllo"}))[1]["output"] == "HÉLLO"


async def test_malformed_requests_are_4xx_json_and_server_keeps_serving(add1_store, serve) -> None:
    client = await serve(
        "- {name: add1, model: add1}", server_yaml="server: {max_body_bytes: 4096}"
    )
    cases = [
        (b"", 400, "empty request body"),
        (b"{not json", 400, "malformed JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"inputs": [1]}', 400, "unknown field(s) 'inputs'"),
        (b'{"version": 1}', 400, 'the body needs "input"'),
        (b'{"input": [1], "input_batch": [[1]]}', 400, "not both"),
        (b'{"input_batch": []}', 400, "non-empty JSON array"),
        (b'{"input": "1.0"}', 400, "input: expected a JSON array of numbers, got a string"),
        (b'{"input_batch": [[1], ["x"]]}', 400, "input_batch[1]: expected a JSON array"),
        (b'{"input": [1e999999]}', 400, "malformed JSON"),
        (b"\xff\xfe", 400, "malformed JSON"),
        (json.dumps({"input": [0.5] * 5000}).encode(), 413, "Maximum request body size"),
    ]
    for body, status, needle in cases:
        resp = await client.post("/add1/predict", data=body)
        data = await resp.json()
        assert resp.status == status, (body[:40], data)
        assert needle in data["error"], (body[:40], data)
        assert resp.content_type == "application/json"
    resp = await client.get("/add1/predict")
    assert resp.status == 405 and "error" in await resp.json()
    resp = await client.post("/nope/predict", data=b"{}")
    assert resp.status == 404 and (await resp.json())["error"] == "no route POST /nope/predict"
    assert (await _post(client, "/add1/predict", {"input": [1.0]}))[1]["output"] == 2.0


async def test_model_errors_are_500_and_the_server_goes_on(store_dir, serve) -> None:
    def flaky(xs):
        if xs[0][0] < 0:
            raise ValueError("negative input")
        return [str(x[0]) for x in xs]

    modelcore.deploy_python_closure(store_dir, "flaky", flaky)
    modelcore.deploy_python_closure(store_dir, "short", lambda xs: xs[:-1])
    modelcore.deploy_python_closure(store_dir, "none", lambda xs: None)
    client = await serve("""
        - {name: flaky, model: flaky}
        - {name: short, model: short}
        - {name: none, model: none}
    """)
    status, body = await _post(client, "/flaky/predict", {"input": [-1.0]})
    assert status == 500
    assert body == {
        "error": "model flaky v1 raised ValueError: negative input",
        "cause": "ValueError",
    }
    status, body = await _post(client, "/short/predict", {"input_batch": [[1.0], [2.0]]})
    assert status == 500 and body["error"] == (
        "model short v1 returned 1 outputs for 2 inputs; a predict function must return one output per input"
    )
    status, body = await _post(client, "/none/predict", {"input": [1.0]})
    assert status == 500 and "returned NoneType" in body["error"]
    assert (await _post(client, "/flaky/predict", {"input": [3.0]}))[1]["output"] == 3.0


async def test_predictions_run_off_the_event_loop(store_dir, serve) -> None:
    import threading

    modelcore.deploy_python_closure(
        store_dir,
        "where",
        lambda xs: [threading.current_thread().name for _ in xs],
        input_type="strings",
    )
    client = await serve("- {name: where, model: where, input_type: strings}")
    _, body = await _post(client, "/where/predict", {"input": "x"})
    assert body["output"].startswith("predict-where")
    assert body["output"] != threading.current_thread().name


async def test_health_and_a_broken_only_version(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "good", lambda xs: [1 for _ in xs])
    modelcore.deploy_python_closure(store_dir, "broken", lambda xs: [1 for _ in xs])
    (store_dir / "broken" / "1" / "func.pkl").write_bytes(b"garbage")
    client = await serve("""
        - {name: good, model: good}
        - {name: broken, model: broken}
        - {name: fallback, model: broken, route: /fallback/predict, default_output: -1}
    """)
    assert (await client.get("/v2/health/live")).status == 200
    resp = await client.get("/v2/health/ready")
    assert resp.status == 503
    status, body = await _post(client, "/broken/predict", {"input": [1.0]})
    assert status == 503
    assert "has no version that can answer now" in body["error"]
    assert "func.pkl" in body["cause"]  # refused by its manifest's sha256 before unpickling
    status, body = await _post(client, "/fallback/predict", {"input": [1.0]})
    assert status == 200
    assert body["output"] == -1 and body["default"] is True
    assert "no version that can answer" in body["default_explanation"]
    assert (await _post(client, "/good/predict", {"input": [1.0]}))[1]["output"] == 1
    resp = await client.get("/v2/models/broken")
    status_body = await resp.json()
    assert status_body["versions"] == ["1"] and status_body["platform"] == "python_closure"
    assert status_body["status"]["versions"][0]["state"] == "failed"
    assert "func.pkl" in status_body["status"]["versions"][0]["error"]
    resp = await client.get("/v2/models/good/versions/1")
    assert (await resp.json())["state"] == "ready"


async def test_ready_once_every_model_is_loaded(add1_store, serve) -> None:
    client = await serve("- {name: add1, model: add1}")
    resp = await client.get("/v2/health/ready")
    assert resp.status == 200 and (await resp.json()) == {"ready": True}


async def test_a_model_calling_sys_exit_is_a_500_and_the_server_goes_on(store_dir, serve) -> None:
    def quits(xs):
        import sys

        if xs[0][0] < 0:
            sys.exit(3)
        return [1 for _ in xs]

    modelcore.deploy_python_closure(store_dir, "quits", quits)
    client = await serve("- {name: quits, model: quits, batching: {max_batch_size: 4}}")
    status, body = await _post(client, "/quits/predict", {"input": [-1.0]})
    assert status == 500 and "raised SystemExit" in body["error"]
    assert (await _post(client, "/quits/predict", {"input": [1.0]}))[1]["output"] == 1


async def test_versions_pinned_by_requests_stay_loaded_only_a_few_at_a_time(
    store_dir, serve
) -> None:
    for k in range(1, 6):
        modelcore.deploy_python_closure(store_dir, "m", lambda xs, k=k: [k for _ in xs])
    client = await serve("- {name: m, model: m}")
    for version in (1, 2, 3, 4):
        assert (await _post(client, "/m/predict", {"input": [0.0], "version": version}))[1][
            "output"
        ] == version
    from modelcore.server import MANAGER

    slot = client.app[MANAGER].slots["m"]
    import asyncio

    for _ in range(100):
        if sorted(slot.loaded) == [3, 4, 5]:
            break
        await asyncio.sleep(0.02)
    assert sorted(slot.loaded) == [3, 4, 5]  # latest plus the two most recent on demand


async def test_metrics_never_label_names_that_are_not_served(add1_store, serve) -> None:
    client = await serve("- {name: add1, model: add1}")
    for i in range(20):
        await client.get(f"/v2/models/nope-{i}/ready")
    text = await (await client.get("/metrics")).text()
    assert "nope-" not in text
