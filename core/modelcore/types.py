"""Plain data types shared by the core and plugins (no behaviour of their own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BackendInfo:
    """A backend that a plugin provides.

    ``frameworks`` are distribution names whose installed versions are recorded
    in each manifest the backend writes (``("torch",)``), so a load elsewhere
    can say which version wrote the artifact.
    """

    name: str
    description: str = ""
    frameworks: tuple[str, ...] = ()
    isolation: str | None = None
    """``"process"`` when the backend must run in an isolated worker (never in the server)."""
    requirements: tuple[str, ...] = ()
    """What a worker environment for this backend installs (pip requirement strings)."""
    excluded: tuple[str, ...] = ()
    """Distributions that must not be in that environment (``import mxnet`` breaks with onnx)."""


@dataclass
class SaveResult:
    """What a backend tells the core about the version it just wrote."""

    format: str | None = None
    """How the model was saved, e.g. ``"torchscript"`` or ``"pickled-module"``."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Extra facts for the manifest (shapes, signatures, class names)."""


@dataclass(frozen=True)
class InputType:
    """A request input type: ``decode`` turns one JSON value into a model input."""

    name: str
    decode: Callable[[Any], Any]
    description: str = ""
