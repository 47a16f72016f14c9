"""Requests never fail while many versions (some broken) are published under load."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import modelcore
from modelcore.manifest import Manifest, now
from modelcore.server import MANAGER

VERSIONS = 24


def const(k):
    def predict(xs):
        if any(x[0] < 0 for x in xs):  # warm-up input of the "broken" versions
            raise ValueError("refuses negative input")
        return [k for _ in xs]

    return predict


def publish_corrupt(store_dir: Path, name: str, version: int) -> None:
    """A version whose pickle is garbage, published atomically like any other."""
    staged = store_dir / name / f".staging-corrupt-{version}"
    staged.mkdir()
    (staged / "func.pkl").write_bytes(b"\x80\x05garbage")
    Manifest(
        name=name, version=version, backend="python_closure", created=now(), has_function=True
    ).write(staged)
    os.rename(staged, store_dir / name / str(version))


async def test_no_request_fails_while_versions_come_and_go(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1), warmup_inputs=[[1.0]])
    client = await serve("- {name: m, model: m, threads: 4}")
    manager = client.app[MANAGER]
    results: list[list[tuple[int, object]]] = [[] for _ in range(4)]
    stop = asyncio.Event()

    async def hammer(log: list[tuple[int, object]]) -> None:
        while not stop.is_set():
            resp = await client.post("/m/predict", data=json.dumps({"input": [1.0]}))
            body = await resp.json()
            log.append((resp.status, body.get("output", body)))

    workers = [asyncio.ensure_future(hammer(log)) for log in results]
    good = [1]
    broken = []
    try:
        for version in range(2, VERSIONS + 1):
            if version % 6 == 0:
                publish_corrupt(store_dir, "m", version)
                broken.append(version)
            elif version % 6 == 3:
                # Loads, but fails its warm-up: must never serve.
                modelcore.deploy_python_closure(
                    store_dir, "m", const(version), warmup_inputs=[[-1.0]]
                )
                broken.append(version)
            else:
                modelcore.deploy_python_closure(
                    store_dir, "m", const(version), warmup_inputs=[[1.0]]
                )
                good.append(version)
            deadline = time.monotonic() + 20
            while True:
                status = {v["version"]: v for v in manager.model_status("m")["versions"]}
                settled = (
                    status.get(version, {}).get("state") == "failed"
                    if version in broken
                    else manager.model_status("m")["latest"] == version
                )
                if settled:
                    break
                assert time.monotonic() < deadline, (
                    f"v{version} never settled: {status.get(version)}"
                )
                await asyncio.sleep(0.01)
            if version not in broken:
                # Let the load see a few answers from this version before the next lands.
                seen = sum(len(log) for log in results)
                while sum(len(log) for log in results) < seen + 8:
                    await asyncio.sleep(0.005)
    finally:
        stop.set()
        await asyncio.gather(*workers)

    answers = [entry for log in results for entry in log]
    failures = [entry for entry in answers if entry[0] != 200]
    assert not failures, failures[:5]
    assert len(answers) > 200
    for log in results:  # each client sees versions only move forward
        outputs = [out for _status, out in log]
        assert outputs == sorted(outputs)
    served = {out for _status, out in answers}
    assert served == set(good), (sorted(served), good)
    # Every replaced version was unloaded; every broken one is marked failed.
    deadline = time.monotonic() + 10
    while True:
        states = {v["version"]: v["state"] for v in manager.model_status("m")["versions"]}
        expected = (
            {v: "failed" for v in broken} | {v: "unloaded" for v in good[:-1]} | {good[-1]: "ready"}
        )
        if states == expected:
            break
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.05)
