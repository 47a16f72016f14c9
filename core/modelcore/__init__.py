"""modelcore: take a trained model to a live HTTP API with one call, and keep it current.

>>> import modelcore
>>> modelcore.deploy_python_closure("./models", "add1", lambda xs: [str(x[0] + 1) for x in xs])
1
"""

from __future__ import annotations

from modelcore.deploy import deploy, deploy_python_closure
from modelcore.errors import ModelcoreError
from modelcore.hookspecs import hookimpl
from modelcore.manifest import Manifest
from modelcore.plugins import get_plugin_manager, plugin_manager
from modelcore.store import ModelStore, open_store
from modelcore.types import BackendInfo, InputType, SaveResult

__version__ = "0.1.0"

__all__ = [
    "BackendInfo",
    "InputType",
    "Manifest",
    "ModelStore",
    "ModelcoreError",
    "SaveResult",
    "deploy",
    "deploy_python_closure",
    "get_plugin_manager",
    "hookimpl",
    "open_store",
    "plugin_manager",
]
