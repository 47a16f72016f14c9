"""The Open Inference Protocol with the real third-party client (tritonclient[http]), and bad input."""

from __future__ import annotations

import base64
import json
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

import modelcore
from modelcore.testing import ServerProcess

pytestmark = pytest.mark.slow


def add_one(xs):
    return [x + 1 for x in xs]


def two_outputs(xs):
    return [{"sum": float(x.sum()), "max": float(x.max())} for x in xs]


def shout(xs):
    return [x.upper() + "!" for x in xs]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from modelcore_onnx import deploy_onnx_model
    from modelcore_onnx.testing import affine_model

    work = tmp_path_factory.mktemp("oip")
    store = work / "models"
    modelcore.deploy_python_closure(store, "add1", add_one, input_type="doubles")
    modelcore.deploy_python_closure(store, "stats", two_outputs, input_type="doubles")
    modelcore.deploy_python_closure(store, "shout", shout, input_type="strings")
    weights = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
    deploy_onnx_model(
        store, "affine", None, affine_model(weights, [0.5, -0.5]), input_type="floats"
    )
    spec = (
        f"store: {store}\nserver: {{port: PORT, max_body_bytes: 65536}}\napis:\n"
        "  - {name: add1, model: add1}\n  - {name: stats, model: stats}\n"
        "  - {name: shout, model: shout, input_type: strings}\n"
        "  - {name: affine, model: affine, input_type: floats, batching: {max_batch_size: 16}}\n"
    )
    with ServerProcess(spec, work) as server:
        yield f"127.0.0.1:{server.port}"
    assert server.returncode == 0


@pytest.fixture
def client(server):
    c = triton.InferenceServerClient(url=server)
    yield c
    c.close()


def test_health_metadata_and_readiness(client) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "modelcore" and "binary_tensor_data" in meta["extensions"]
    assert client.is_model_ready("affine") and client.is_model_ready("affine", "1")
    assert not client.is_model_ready("affine", "7")
    affine = client.get_model_metadata("affine")
    assert affine["platform"] == "onnx" and affine["versions"] == ["1"]
    assert affine["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    assert affine["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]
    assert client.get_model_metadata("add1", "1")["inputs"][0]["datatype"] == "FP64"
    with pytest.raises(InferenceServerException, match="not served here"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize("binary", [False, True])
def test_infer_onnx_with_and_without_binary_data(client, binary) -> None:
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]], dtype=np.float32)
    inp = triton.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("y", binary_data=binary)
    result = client.infer("affine", [inp], outputs=[out], request_id="r-1")
    expected = x @ np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=np.float32) + [0.5, -0.5]
    np.testing.assert_allclose(result.as_numpy("y"), expected, rtol=1e-6)
    response = result.get_response()
    assert response["model_name"] == "affine" and response["model_version"] == "1"
    assert response["id"] == "r-1"


@pytest.mark.parametrize("binary", [False, True])
def test_infer_closures_rows_named_outputs_and_bytes(client, binary) -> None:
    x = np.array([[1.0, 2.0], [5.0, -1.0]])
    inp = triton.InferInput("input0", [2, 2], "FP64")
    inp.set_data_from_numpy(x, binary_data=binary)
    result = client.infer(
        "add1", [inp], outputs=[triton.InferRequestedOutput("output0", binary_data=binary)]
    )
    np.testing.assert_array_equal(result.as_numpy("output0"), x + 1)
    result = client.infer("stats", [inp], model_version="1")
    np.testing.assert_array_equal(result.as_numpy("sum"), [3.0, 4.0])
    np.testing.assert_array_equal(result.as_numpy("max"), [2.0, 5.0])
    words = np.array([b"hello", "wörld".encode()], dtype=object)
    inp = triton.InferInput("text", [2], "BYTES")
    inp.set_data_from_numpy(words, binary_data=binary)
    result = client.infer(
        "shout", [inp], outputs=[triton.InferRequestedOutput("output0", binary_data=binary)]
    )
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("output0")] == [
        "HELLO!",
        "WÖRLD!",
    ]


def test_client_errors_are_4xx_with_the_protocols_error_body(client) -> None:
    bad = triton.InferInput("x", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="not served here"):
        client.infer("missing", [bad])
    with pytest.raises(InferenceServerException, match="unknown output 'z'"):
        client.infer("affine", [bad], outputs=[triton.InferRequestedOutput("z")])


def _raw(
    server: str, path: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://{server}{path}",
        data=body,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


BAD = [
    ("/v2/models/affine/infer", b"", {}, "malformed JSON"),
    ("/v2/models/affine/infer", b"{", {}, "malformed JSON"),
    ("/v2/models/affine/infer", b"[]", {}, "JSON object"),
    ("/v2/models/affine/infer", b'{"inputs": []}', {}, "non-empty array"),
    ("/v2/models/affine/infer", b'{"inputs": [{"name": "x"}]}', {}, "unknown datatype"),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3]}]}',
        {},
        "no data",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2]}]}',
        {},
        "2 elements for a shape of 3",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": ["a", "b", "c"]}]}',
        {},
        "must be numbers",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}',
        {},
        "do not fit INT8",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]}',
        {},
        "unknown datatype",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}',
        {},
        "non-negative integers",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}',
        {},
        "does not match the model's [-1, 3]",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0, 3], "data": []}]}',
        {},
        "no rows",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}]}',
        {},
        "true or false",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "parameters": {"binary_data_size": 12}}]}',
        {"Inference-Header-Content-Length": "9999"},
        "Inference-Header-Content-Length is 9999",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "parameters": {"binary_data_size": 12}}]}'
        + b"\x00" * 8,
        {"Inference-Header-Content-Length": "104"},
        "does not fit the binary data",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}xx',
        {"Inference-Header-Content-Length": "83"},
        "belong to no input",
    ),
    (
        "/v2/models/affine/infer",
        b"{}",
        {"Inference-Header-Content-Length": "abc"},
        "must be an integer",
    ),
    (
        "/v2/models/shout/infer",
        b'{"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 2}}]}\x05\x00',
        {"Inference-Header-Content-Length": "101"},
        "truncated BYTES",
    ),
    (
        "/v2/models/shout/infer",
        b'{"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1], "data": [1]}]}',
        {},
        "must be strings",
    ),
    ("/v2/models/affine/versions/0/infer", b"{}", {}, "not a positive integer"),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": [1], "shape": [1], "data": [1]}]}',
        {},
        "unknown datatype [1]",
    ),
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}],'
        b' "outputs": [{"name": "y", "parameters": 5}]}',
        {},
        "parameters must be an object",
    ),
    (
        "/v2/models/affine/versions/9/infer",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}',
        {},
        "no version 9",
    ),
    ("/v2/models/..%2Fetc/infer", b"{}", {}, ""),
    ("/v2/models/%C3%A9t%C3%A9/infer", b"{}", {}, ""),  # a unicode name
    (
        "/v2/models/affine/infer",
        b'{"inputs": [{"name": "\xc3\xa9", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}',
        {},
        "unknown input",
    ),
    (
        "/add1/predict",
        b'{"input": "' + base64.b64encode(b"x" * 10).decode().encode() + b'"}',
        {},
        "expected a JSON array",
    ),
    ("/add1/predict", b"x" * 70000, {}, "Maximum request body size"),
    ("/add1/predict", b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, ""),
    ("/shout/predict", b'{"input": 12}', {}, "expected a string"),
]


def test_a_battery_of_malformed_requests_gets_4xx_json_and_the_server_goes_on(server) -> None:
    seen = []
    for path, body, headers, needle in BAD:
        status, answer = _raw(server, path, body, headers)
        seen.append((path, status))
        assert 400 <= status < 500, (path, body[:80], status, answer)
        assert isinstance(answer.get("error"), str) and needle in answer["error"], (
            path,
            body[:80],
            answer,
        )
    x = struct.pack("<3f", 1, 2, 3)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 3],
                    "parameters": {"binary_data_size": 12},
                }
            ]
        }
    ).encode()
    status, answer = _raw(
        server,
        "/v2/models/affine/infer",
        header + x,
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert status == 200 and answer["outputs"][0]["data"] == [4.5, 6.5]
    assert len(seen) == len(BAD) >= 25
