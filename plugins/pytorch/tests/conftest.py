"""Fixtures for the pytorch plugin's tests: a fresh plugin manager, one torch thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from modelcore.plugins import set_plugin_manager


@pytest.fixture(autouse=True)
def _fresh_plugin_manager() -> Iterator[None]:
    set_plugin_manager(None)
    yield
    set_plugin_manager(None)


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    # The test machines are small and shared; tiny models gain nothing from more threads.
    torch.set_num_threads(1)
