"""Fixtures for the mxnet plugin's tests. Collected in every environment: no mxnet import here.

The mxnet tests run in the mxnet environment (``.venv-mxnet``); in the main one
(numpy 2, no mxnet) their files skip and ``test_main_env.py`` runs.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from modelcore.plugins import set_plugin_manager

# In the main environment (numpy 2, no mxnet) the mxnet-only files are not collected at all:
# they run in .venv-mxnet (scripts/test.sh does both), so no run reports them as skipped.
if importlib.util.find_spec("mxnet") is None:
    collect_ignore = ["test_mxnet_backend.py", "test_mxnet_contract.py", "test_mxnet_server.py"]
else:
    # Before any test module imports mxnet: no "Subgraph backend MKLDNN" line per bind, and
    # one OpenMP thread (the test machines are small and shared; the models are tiny).
    os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config: pytest.Config) -> None:
    # mxnet 1.9's own modules use numpy aliases deprecated since numpy 1.20: not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:mxnet.*")


@pytest.fixture(autouse=True, scope="session")
def _worker_envs_in_session_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A worker environment built by a test goes to the session's tmp, never to ~/.cache."""
    os.environ.setdefault("MODELCORE_ENV_CACHE", str(tmp_path_factory.mktemp("envs")))


@pytest.fixture(autouse=True)
def _cache_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELCORE_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def _fresh_plugin_manager() -> Iterator[None]:
    set_plugin_manager(None)
    yield
    set_plugin_manager(None)
