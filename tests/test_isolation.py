"""Isolated workers: the framed protocol, crashes, hangs, replicas, environments, no orphans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest

import modelcore
from modelcore.runtime.worker.protocol import Channel, encode
from modelcore.server import MANAGER
from modelcore.testing import ServerProcess


def test_protocol_sends_arrays_as_raw_out_of_band_buffers() -> None:
    big = np.arange(10_000, dtype=np.float32).reshape(100, 100)
    chunks = encode(("predict", 1, [big, np.float64(2.5), "text", {"k": [1, 2]}]))
    assert len(chunks) == 3  # header, pickle, one raw buffer
    assert len(chunks[1]) < 500 and chunks[2].nbytes == big.nbytes
    left, right = socket.socketpair()
    try:
        Channel(left).send(("predict", 1, [big, np.float64(2.5), "text", {"k": [1, 2]}]))
        kind, rid, (arr, scalar, text, obj) = Channel(right).recv()
    finally:
        left.close()
        right.close()
    assert (kind, rid, text, obj) == ("predict", 1, "text", {"k": [1, 2]})
    np.testing.assert_array_equal(arr, big)
    assert arr.dtype == np.float32 and scalar == 2.5 and isinstance(scalar, np.float64)


def crashy(xs):
    import os

    if any(x[0] == 13 for x in xs):
        os._exit(3)
    return [os.getpid() for _ in xs]


def hangs(xs):
    import os
    import time

    if any(x[0] == 7 for x in xs):
        time.sleep(60)
    return [os.getpid() for _ in xs]


async def post(client, path, value):
    resp = await client.post(path, data=json.dumps({"input": [float(value)]}))
    return resp.status, await resp.json()


async def eventually_ok(client, path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        status, body = await post(client, path, 1)
        if status == 200:
            return body["output"]
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


async def test_a_crashing_worker_fails_its_request_and_restarts(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "crashy", crashy)
    modelcore.deploy_python_closure(store_dir, "plain", lambda xs: [os.getpid() for _ in xs])
    client = await serve("""
        - {name: crashy, model: crashy, isolation: process}
        - {name: plain, model: plain}
    """)
    first = (await post(client, "/crashy/predict", 1))[1]["output"]
    assert first != os.getpid()  # answered by a worker process
    started = time.monotonic()
    status, body = await post(client, "/crashy/predict", 13)
    assert status == 503, body
    assert "exited with code 3" in body["error"]
    assert time.monotonic() - started < 10  # promptly, never a hang
    assert (await post(client, "/plain/predict", 1))[1]["output"] == os.getpid()  # untouched
    second = await eventually_ok(client, "/crashy/predict")
    assert second not in (first, os.getpid())  # a new worker
    entry = client.app[MANAGER].model_status("crashy")["versions"][0]
    assert entry["worker_restarts"] == 1 and entry["workers"] == [second]


async def test_a_hanging_worker_times_out_and_restarts(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "hangs", hangs)
    client = await serve("- {name: hangs, model: hangs, isolation: process, timeout_s: 1}")
    first = (await post(client, "/hangs/predict", 1))[1]["output"]
    started = time.monotonic()
    status, body = await post(client, "/hangs/predict", 7)
    assert status == 503 and "did not answer within 1s" in body["error"], body
    assert time.monotonic() - started < 10
    second = await eventually_ok(client, "/hangs/predict")
    assert second != first


async def test_replicas_spread_requests(store_dir: Path, serve) -> None:
    def slow_pid(xs):
        import os
        import time

        time.sleep(0.05)
        return [os.getpid() for _ in xs]

    modelcore.deploy_python_closure(store_dir, "r", slow_pid)
    client = await serve("- {name: r, model: r, isolation: process, replicas: 2}")
    answers = await asyncio.gather(*(post(client, "/r/predict", 1) for _ in range(16)))
    pids = {body["output"] for status, body in answers if status == 200}
    assert len(answers) == 16 and all(status == 200 for status, _ in answers)
    assert len(pids) == 2 and os.getpid() not in pids
    assert sorted(client.app[MANAGER].model_status("r")["versions"][0]["workers"]) == sorted(pids)


@pytest.mark.slow
async def test_closure_with_packages_serves_from_its_own_environment(
    store_dir: Path, serve
) -> None:
    with pytest.raises(ImportError):
        import inflection  # noqa: F401

    def camelize(xs):  # nested, so cloudpickle saves it by value (this test module is not there)
        import inflection  # not installed in the server's environment

        return [inflection.camelize(x) for x in xs]

    modelcore.deploy_python_closure(
        store_dir, "camel", camelize, input_type="strings", pkgs_to_install=["inflection==0.5.1"]
    )
    modelcore.deploy_python_closure(
        store_dir,
        "broken",
        camelize,
        input_type="strings",
        pkgs_to_install=["modelcore-no-such-package==9.9.9"],
    )
    client = await serve(
        """
        - {name: camel, model: camel, input_type: strings}
        - {name: broken, model: broken, input_type: strings}
        """,
        wait_ready=False,  # building an environment takes a minute; the server answers meanwhile
    )
    assert (await client.get("/v2/health/live")).status == 200
    resp = await client.post("/camel/predict", json={"input": "hello_world"})  # waits for the load
    body = await resp.json()
    assert resp.status == 200, body
    assert body["output"] == "HelloWorld"
    manager = client.app[MANAGER]
    deadline = time.monotonic() + 300
    while manager.model_status("broken")["versions"][0]["state"] != "failed":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    resp = await client.post("/broken/predict", json={"input": "x"})
    body = await resp.json()
    assert resp.status == 503
    assert "cannot build the worker environment" in body["cause"]
    assert "modelcore-no-such-package" in body["cause"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_workers_leave_no_orphans(store_dir: Path, tmp_path: Path, how: str) -> None:
    import urllib.request

    modelcore.deploy_python_closure(store_dir, "w", crashy)
    spec = (
        f"store: {store_dir}\nserver: {{port: PORT}}\n"
        "apis:\n  - {name: w, model: w, isolation: process, replicas: 2}\n"
    )
    with ServerProcess(spec, tmp_path) as server:
        deadline = time.monotonic() + 60
        pids: list[int] = []
        while len(pids) < 2:
            assert time.monotonic() < deadline
            with urllib.request.urlopen(f"{server.base}/v2/models/w", timeout=2) as r:
                pids = json.loads(r.read())["status"]["versions"][0].get("workers", [])
            time.sleep(0.1)
        assert all(_alive(p) for p in pids)
        code = server.stop(getattr(signal, how))
        if how == "SIGTERM":
            assert code == 0
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids):
            assert time.monotonic() < deadline, f"orphaned workers {pids}"
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_an_answer_that_cannot_be_sent_back_fails_only_its_request(store_dir, serve) -> None:
    def unpicklable(xs):
        import threading

        if xs[0][0] < 0:
            return [threading.Lock() for _ in xs]
        return [1.0 for _ in xs]

    modelcore.deploy_python_closure(store_dir, "u", unpicklable)
    client = await serve("- {name: u, model: u, isolation: process}")
    status, body = await post(client, "/u/predict", -1)
    assert status == 500 and "cannot be sent back" in body["error"]
    assert (await post(client, "/u/predict", 1))[1]["output"] == 1.0
    entry = client.app[MANAGER].model_status("u")["versions"][0]
    assert entry["worker_restarts"] == 0


async def test_isolation_inline_refuses_a_version_that_needs_a_worker(
    store_dir: Path, serve
) -> None:
    modelcore.deploy_python_closure(store_dir, "p", crashy, pkgs_to_install=["six==1.16.0"])
    client = await serve("- {name: p, model: p, isolation: inline}")
    resp = await client.post("/p/predict", json={"input": [1.0]})
    assert resp.status == 503
    entry = client.app[MANAGER].model_status("p")["versions"][0]
    assert entry["state"] == "failed"
    assert (
        "only a worker environment can have, and the spec says isolation: inline"
        in (entry["error"])
    )
