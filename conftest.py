"""Repository-wide pytest setup: GPU tests run only where a GPU exists."""

from __future__ import annotations

import os
import shutil

import pytest


def _has_gpu() -> bool:
    if os.environ.get("MODELCORE_GPU_TESTS") == "0":
        return False
    return shutil.which("nvidia-smi") is not None or os.path.exists("/dev/nvidia0")


@pytest.fixture(autouse=True, scope="session")
def _worker_envs_in_session_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Worker environments built by tests go to the session's tmp (never ~/.cache), built once."""
    os.environ.setdefault("MODELCORE_ENV_CACHE", str(tmp_path_factory.mktemp("envs")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
