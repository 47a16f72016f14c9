"""S3 stores against a real local S3 server (moto on 127.0.0.1): publish, poll, swap, cache."""

from __future__ import annotations

import asyncio
import hashlib
import json
import textwrap
import time
from pathlib import Path

import cloudpickle
import pytest
import yaml

import modelcore
from modelcore.manifest import MANIFEST_NAME
from modelcore.plugins import get_plugin_manager
from modelcore.server import MANAGER, create_app
from modelcore.server.app import STARTUP
from modelcore.spec import parse_spec
from modelcore.store import ModelStore


def const(k):
    return lambda xs: [k for _ in xs]


@pytest.fixture
def s3_store(s3_server) -> ModelStore:
    bucket = s3_server.new_bucket()
    return ModelStore(f"s3://{bucket}/models", s3_server.storage_options)


def test_remote_publish_lists_reads_and_downloads(s3_store: ModelStore) -> None:
    assert modelcore.deploy_python_closure(s3_store, "m", const(1)) == 1
    assert modelcore.deploy_python_closure(s3_store, "m", const(2)) == 2
    assert s3_store.list_models() == ["m"]
    assert s3_store.list_versions("m") == [1, 2]
    assert s3_store.read_manifest("m", 2).version == 2
    # A version without its manifest (an upload in progress) is not a version yet.
    s3_store.fs.pipe_file(f"{s3_store.root}/m/3/func.pkl", b"partial")
    s3_store.invalidate()
    assert s3_store.list_versions("m") == [1, 2]
    snap = s3_store.snapshot("m")
    assert sorted(snap) == [1, 2]
    local = s3_store.local_dir("m", 2, snap[2])
    assert sorted(p.name for p in local.iterdir()) == ["func.pkl", MANIFEST_NAME]
    assert cloudpickle.loads((local / "func.pkl").read_bytes())([0]) == [2]
    # Rewriting an object changes the fingerprint (ETag), so the next download is fresh.
    s3_store.fs.pipe_file(f"{s3_store.root}/m/2/func.pkl", cloudpickle.dumps(const(20)))
    s3_store.invalidate()
    snap2 = s3_store.snapshot("m")
    assert snap2[2] != snap[2] and snap2[1] == snap[1]
    fresh = s3_store.local_dir("m", 2, snap2[2])
    assert fresh != local
    assert cloudpickle.loads((fresh / "func.pkl").read_bytes())([0]) == [20]


def test_disk_cache_keeps_to_its_count(s3_store: ModelStore) -> None:
    for k in range(3):
        modelcore.deploy_python_closure(s3_store, "m", const(k))
    s3_store.disk_cache.max_count = 2
    paths = [s3_store.local_dir("m", v) for v in (1, 2, 3)]
    assert not paths[0].exists() and paths[1].exists() and paths[2].exists()
    assert s3_store.disk_cache.evictions == 1
    # A pinned entry (a loaded model) is never evicted.
    s3_store.disk_cache.pin(paths[1])
    s3_store.local_dir("m", 1)
    assert paths[1].exists() and not paths[2].exists()


async def _serve(aiohttp_client, tmp_path: Path, s3_store: ModelStore, apis: str, top: str = ""):
    text = (
        f"store: {s3_store.url}\n"
        f"storage_options: {json.dumps(s3_store.storage_options)}\n"
        f"poll_interval: 0.2\n{top}\napis:\n" + textwrap.indent(textwrap.dedent(apis), "  ")
    )
    yaml.safe_load(text)
    app = create_app(parse_spec(text, str(tmp_path / "spec.yaml")), pm=get_plugin_manager())
    client = await aiohttp_client(app)
    await asyncio.wait_for(asyncio.shield(app[STARTUP]), 60)
    return client


async def _output(client, path="/m/predict"):
    resp = await client.post(path, json={"input": [0.0]})
    body = await resp.json()
    return body.get("output") if resp.status == 200 else (resp.status, body)


async def _wait_output(client, expected, path="/m/predict", timeout=20.0):
    deadline = time.monotonic() + timeout
    while (got := await _output(client, path)) != expected:
        assert time.monotonic() < deadline, f"still {got!r}, expected {expected!r}"
        await asyncio.sleep(0.05)


async def test_s3_store_is_polled_and_swapped(aiohttp_client, tmp_path, s3_store) -> None:
    modelcore.deploy_python_closure(s3_store, "m", const(1))
    client = await _serve(aiohttp_client, tmp_path, s3_store, "- {name: m, model: m}")
    assert await _output(client) == 1
    modelcore.deploy_python_closure(s3_store, "m", const(2))
    await _wait_output(client, 2)
    # Rewritten in place (files, then the manifest with their new hashes): the same version
    # reloads from a fresh download.
    data = cloudpickle.dumps(const(22))
    manifest = s3_store.read_manifest("m", 2)
    manifest.files = [
        f.model_copy(update={"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        if f.path == "func.pkl"
        else f
        for f in manifest.files
    ]
    s3_store.fs.pipe_file(f"{s3_store.root}/m/2/func.pkl", data)
    s3_store.fs.pipe_file(f"{s3_store.root}/m/2/{MANIFEST_NAME}", manifest.to_yaml().encode())
    await _wait_output(client, 22)
    # Removed: falls back to the next highest version.
    s3_store.fs.rm(f"{s3_store.root}/m/2", recursive=True)
    await _wait_output(client, 1)
    manager = client.app[MANAGER]
    assert manager.model_status("m")["latest"] == 1


HANDLER = """
import os


class Handler:
    def __init__(self, model_client):
        self.client = model_client

    def load_model(self, path):
        with open(os.path.join(path, "label.txt")) as fh:
            return fh.read()

    def handle_post(self, payload):
        return {"label": self.client.get_model(payload["model"])}
"""


async def test_handler_reads_downloaded_files_from_a_models_dir(
    aiohttp_client, tmp_path, s3_store
) -> None:
    (tmp_path / "handler.py").write_text(HANDLER)
    for name in ("cat", "dog"):
        s3_store.fs.pipe_file(f"{s3_store.root}/zoo/{name}/1/label.txt", name.encode())
    client = await _serve(
        aiohttp_client,
        tmp_path,
        s3_store,
        f"""
        - name: zoo
          handler: {tmp_path}/handler.py:Handler
          models: {{dir: zoo, cache_size: 1, disk_cache_size: 1}}
        """,
    )
    for name in ("cat", "dog", "cat"):
        resp = await client.post("/zoo", json={"model": name})
        assert (await resp.json()) == {"label": name}
    s3_store.fs.pipe_file(f"{s3_store.root}/zoo/cat/2/label.txt", b"lion")

    async def lion():
        resp = await client.post("/zoo", json={"model": "cat"})
        return (await resp.json()) == {"label": "lion"}

    deadline = time.monotonic() + 20
    while not await lion():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    # cat v1 is unloaded once its last request is done; then its download leaves the disk cache.
    group_store = client.app[MANAGER].groups["zoo"].store
    while len(group_store.disk_cache.entries()) != 1:
        assert time.monotonic() < deadline, group_store.disk_cache.entries()
        await asyncio.sleep(0.05)
    assert group_store.disk_cache.entries()[0].parent.name == "cat"
