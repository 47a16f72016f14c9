"""Live reloading from a local store: the watcher, swaps, broken versions, removal, in-place rewrites."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import cloudpickle

import modelcore
from modelcore.server import MANAGER
from modelcore.testing import rewrite_in_place


def const(k):
    return lambda xs: [k for _ in xs]


async def answer(client, path="/m/predict", payload=None):
    resp = await client.post(path, data=json.dumps(payload or {"input": [0.0]}))
    return resp.status, await resp.json()


async def wait_until(check, timeout=15.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(interval)


async def output_is(client, expected, path="/m/predict"):
    async def check():
        status, body = await answer(client, path)
        return status == 200 and body["output"] == expected

    await wait_until(check)


async def test_new_version_is_watched_and_swapped_in(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    client = await serve("- {name: m, model: m}")
    assert (await answer(client))[1]["output"] == 1
    modelcore.deploy_python_closure(store_dir, "m", const(2))
    await output_is(client, 2)
    manager = client.app[MANAGER]
    await wait_until(lambda: _state(manager, "m", 1, "unloaded"))
    assert manager.model_status("m")["latest"] == 2


async def _state(manager, name, version, state):
    for entry in manager.model_status(name)["versions"]:
        if entry["version"] == version:
            return entry["state"] == state
    return False


async def test_broken_version_keeps_the_serving_one_and_fixing_it_in_place_loads_it(
    store_dir: Path, serve
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const(1))
    client = await serve("- {name: m, model: m}")
    # v2 is published with a corrupt pickle: it must fail to load and v1 must keep serving.
    modelcore.deploy_python_closure(store_dir, "m", const(2))
    good = (store_dir / "m" / "2" / "func.pkl").read_bytes()
    (store_dir / "m" / "2" / "func.pkl").write_bytes(b"not a pickle")
    manager = client.app[MANAGER]
    await wait_until(lambda: _state(manager, "m", 2, "failed"))
    status = manager.model_status("m")
    v2 = next(v for v in status["versions"] if v["version"] == 2)
    assert "func.pkl" in v2["error"]  # its bytes do not match the manifest's sha256
    assert status["latest"] == 1
    assert (await answer(client))[1]["output"] == 1
    # Fixing the file in place makes it load.
    (store_dir / "m" / "2" / "func.pkl").write_bytes(good)
    await output_is(client, 2)


async def test_warmup_failure_never_replaces_the_serving_version(store_dir: Path, serve) -> None:
    def picky(xs):
        if any(x[0] < 0 for x in xs):
            raise ValueError("cannot handle negatives")
        return [1 for _ in xs]

    modelcore.deploy_python_closure(store_dir, "m", picky, warmup_inputs=[[1.0]])
    client = await serve("- {name: m, model: m}")
    modelcore.deploy_python_closure(store_dir, "m", picky, warmup_inputs=[[-1.0]])
    manager = client.app[MANAGER]
    await wait_until(lambda: _state(manager, "m", 2, "failed"))
    assert "cannot handle negatives" in manager.model_status("m")["versions"][1]["error"]
    assert (await answer(client))[1]["output"] == 1


async def test_removed_latest_falls_back_and_no_versions_is_503(store_dir: Path, serve) -> None:
    for k in (1, 2, 3):
        modelcore.deploy_python_closure(store_dir, "m", const(k))
    client = await serve("- {name: m, model: m}")
    assert (await answer(client))[1]["output"] == 3
    shutil.rmtree(store_dir / "m" / "3")
    await output_is(client, 2)
    for v in ("2", "1"):
        shutil.rmtree(store_dir / "m" / v)

    async def unavailable():
        status, body = await answer(client)
        return status == 503 and body

    body = await wait_until(unavailable)
    assert body["error"] == "model 'm' has no version that can answer now"
    assert "no versions left" in body["cause"]
    modelcore.deploy_python_closure(store_dir, "m", const(4))
    await output_is(client, 4)


async def test_rewritten_in_place_reloads_the_same_version(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", const("old"), input_type="doubles")
    client = await serve("- {name: m, model: m}")
    assert (await answer(client))[1]["output"] == "old"
    rewrite_in_place(store_dir / "m" / "1", {"func.pkl": cloudpickle.dumps(const("new"))})
    await output_is(client, "new")
    assert client.app[MANAGER].model_status("m")["latest"] == 1


HANDLER = """
import os


class Handler:
    def __init__(self, config, model_client):
        self.config = config
        self.client = model_client

    def load_model(self, path):
        # Any files at all: Cortex's contract. The "model" is the sorted file listing.
        files = []
        for root, _dirs, names in os.walk(path):
            files += [os.path.relpath(os.path.join(root, n), path) for n in names]
        return {"files": sorted(files), "greeting": self.config.get("greeting")}

    def handle_post(self, payload, query_params):
        model = self.client.get_model(payload.get("model"), query_params.get("version", "latest"))
        return {"model": model, "echo": payload.get("x")}

    def handle_get(self):
        return {"models": self.client.models()}
"""


async def test_handler_api_with_bare_folders_and_restructuring(
    store_dir: Path, tmp_path, serve
) -> None:
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "files.py").write_text(HANDLER)
    flat = store_dir / "flat"
    flat.mkdir()
    (flat / "weights.bin").write_bytes(b"\x00" * 10)
    versioned = store_dir / "versioned"
    (versioned / "1").mkdir(parents=True)
    (versioned / "1" / "a.txt").write_text("a")
    client = await serve(f"""
        - name: files
          handler: {tmp_path}/handlers/files.py:Handler
          config: {{greeting: hi}}
          models:
            paths:
              - {{name: flat, path: {flat}}}
              - {{name: versioned, path: {versioned}}}
    """)
    resp = await client.post("/files", json={"model": "flat", "x": 1})
    body = await resp.json()
    assert resp.status == 200, body
    assert body == {"model": {"files": ["weights.bin"], "greeting": "hi"}, "echo": 1}
    resp = await client.get("/files")
    assert (await resp.json()) == {"models": ["flat", "versioned"]}
    # Restructure version 1 (a new file): it reloads.
    (versioned / "1" / "b.txt").write_text("b")

    async def restructured():
        resp = await client.post("/files", json={"model": "versioned"})
        return (await resp.json())["model"]["files"] == ["a.txt", "b.txt"]

    await wait_until(restructured)
    (versioned / "2").mkdir()
    (versioned / "2" / "c.txt").write_text("c")

    async def new_version():
        resp = await client.post("/files", json={"model": "versioned"})
        return (await resp.json())["model"]["files"] == ["c.txt"]

    await wait_until(new_version)
    resp = await client.post("/files?version=1", json={"model": "versioned"})
    assert (await resp.json())["model"]["files"] == ["a.txt", "b.txt"]
    resp = await client.post("/files", json={"model": "nope"})
    assert resp.status == 404 and "not served by this API" in (await resp.json())["error"]
    resp = await client.post("/files", data=b"{bad", headers={"Content-Type": "application/json"})
    assert resp.status == 400


async def test_models_dir_follows_added_and_removed_models(store_dir: Path, serve) -> None:
    models = store_dir / "zoo"
    models.mkdir()
    modelcore.deploy_python_closure(models, "a", const("a"))
    client = await serve(f"- {{name: zoo, models: {{dir: {models}}}}}")
    assert (await answer(client, "/zoo/a/predict"))[1]["output"] == "a"
    status, body = await answer(client, "/zoo/b/predict")
    assert status == 404 and body["error"] == "API 'zoo' serves no model 'b'"
    modelcore.deploy_python_closure(models, "b", const("b"))
    await output_is(client, "b", "/zoo/b/predict")
    shutil.rmtree(models / "a")

    async def gone():
        return (await answer(client, "/zoo/a/predict"))[0] == 404

    await wait_until(gone)


async def test_cache_loads_lazily_and_evicts_least_recently_used(store_dir: Path, serve) -> None:
    zoo = store_dir / "zoo"
    for name in ("a", "b", "c"):
        modelcore.deploy_python_closure(zoo, name, const(name))
    client = await serve(f"- {{name: zoo, models: {{dir: {zoo}, cache_size: 2}}}}")
    manager = client.app[MANAGER]
    assert all(s.latest is None for s in manager.slots.values())  # nothing loaded before use
    for name in ("a", "b", "c"):
        assert (await answer(client, f"/zoo/{name}/predict"))[1]["output"] == name
    await wait_until(lambda: _state(manager, "a", 1, "unloaded"))
    assert manager.slots["a"].latest is None
    assert {n for n, s in manager.slots.items() if s.latest} == {"b", "c"}
    # An evicted model reloads on its next request (and evicts the least recently used, b).
    assert (await answer(client, "/zoo/a/predict"))[1]["output"] == "a"
    await wait_until(lambda: _state(manager, "b", 1, "unloaded"))


async def test_eviction_never_interrupts_a_request_in_flight(store_dir: Path, serve) -> None:
    zoo = store_dir / "zoo"

    def slow(xs):
        import time as t

        t.sleep(0.5)
        return ["slow" for _ in xs]

    modelcore.deploy_python_closure(zoo, "slow", slow)
    modelcore.deploy_python_closure(zoo, "fast", const("fast"))
    client = await serve(f"- {{name: zoo, models: {{dir: {zoo}, cache_size: 1}}}}")
    slow_request = asyncio.ensure_future(answer(client, "/zoo/slow/predict"))
    await asyncio.sleep(0.2)
    assert (await answer(client, "/zoo/fast/predict"))[1]["output"] == "fast"
    status, body = await slow_request
    assert status == 200 and body["output"] == "slow"
    manager = client.app[MANAGER]
    await wait_until(lambda: _state(manager, "slow", 1, "unloaded"))


async def test_lazy_models_loaded_together_never_serve_an_evicted_copy(
    store_dir: Path, serve
) -> None:
    zoo = store_dir / "zoo"
    for name in ("a", "b", "c"):
        modelcore.deploy_python_closure(zoo, name, const(name))
    client = await serve(f"- {{name: zoo, models: {{dir: {zoo}, cache_size: 1}}}}")
    for _ in range(3):
        answers = await asyncio.gather(*(answer(client, f"/zoo/{n}/predict") for n in "abcabc"))
        assert [body.get("output") for _, body in answers] == list("abcabc"), answers
