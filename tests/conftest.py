"""Shared fixtures: a temporary store with closures deployed, specs, and servers."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

import modelcore
from modelcore.plugins import get_plugin_manager, set_plugin_manager
from modelcore.server import create_app
from modelcore.server.app import STARTUP
from modelcore.spec import parse_spec


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    """Remote stores download into a per-test cache, never into ~/.cache."""
    monkeypatch.setenv("MODELCORE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _fresh_plugin_manager():
    """Each test sees a freshly built process-wide plugin manager."""
    set_plugin_manager(None)
    yield
    set_plugin_manager(None)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def add1_store(store_dir: Path) -> Path:
    modelcore.deploy_python_closure(store_dir, "add1", lambda xs: [str(x[0] + 1) for x in xs])
    return store_dir


ServeFn = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def serve(aiohttp_client, store_dir: Path) -> ServeFn:
    """Start a server for a spec's ``apis:`` YAML (store = store_dir) and wait until it is ready."""

    async def start(
        apis_yaml: str, *, server_yaml: str = "", top: str = "", wait_ready: bool = True
    ) -> TestClient:
        text = f"store: {store_dir}\n{server_yaml}\n{top}\napis:\n" + textwrap.indent(
            textwrap.dedent(apis_yaml), "  "
        )
        loaded = parse_spec(text, str(store_dir / "spec.yaml"))
        app = create_app(loaded, pm=get_plugin_manager())
        client = await aiohttp_client(app)
        if wait_ready:
            await asyncio.wait_for(asyncio.shield(app[STARTUP]), 30)
        return client

    return start


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 for the whole session."""
    from modelcore.testing.s3 import start_s3_server

    server = start_s3_server()
    yield server
    server.process.terminate()
    server.process.wait(timeout=10)
