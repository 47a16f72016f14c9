"""Loaded models: the manager, version states, and the executors that run predictions."""

from modelcore.runtime.loaded import LoadedVersion, VersionState, VersionStatus
from modelcore.runtime.manager import ModelManager
from modelcore.runtime.slots import ModelConfig, ModelGroup

__all__ = [
    "LoadedVersion",
    "ModelConfig",
    "ModelGroup",
    "ModelManager",
    "VersionState",
    "VersionStatus",
]
