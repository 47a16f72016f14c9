"""Loaded models: the manager, version states, and the executors that run predictions."""

from modelcore.runtime.loaded import LoadedVersion, VersionState, VersionStatus
from modelcore.runtime.manager import ModelConfig, ModelManager

__all__ = ["LoadedVersion", "ModelConfig", "ModelManager", "VersionState", "VersionStatus"]
