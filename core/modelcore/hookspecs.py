"""The plugin contract: every hook a modelcore plugin may implement.

A backend plugin is a module (found through the ``modelcore`` entry-point
group) whose functions are marked with :data:`hookimpl`. The core resolves the
plugin that owns a backend once, when a model loads; the request path then
calls only that plugin's hooks, so a request never fans out through every
installed plugin. Every hook that takes ``backend`` must return ``None`` for a
backend that is not its own.

Hooks are synchronous and are called off the event loop; they may block.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from modelcore.manifest import Manifest
    from modelcore.types import BackendInfo, InputType, SaveResult

hookspec = pluggy.HookspecMarker("modelcore")
hookimpl = pluggy.HookimplMarker("modelcore")


@hookspec
def modelcore_backends() -> list[BackendInfo]:
    """Name the backends this plugin provides.

    Called once when the plugin manager is built. Each :class:`BackendInfo`
    names one backend (``"pytorch"``) and the framework distributions whose
    versions are recorded in every manifest it writes (``("torch",)``).
    """


@hookspec(firstresult=True)
def modelcore_claim(model: Any) -> str | None:
    """Name the backend that can save ``model``, or return ``None``.

    ``deploy(..., model=m)`` without ``backend=`` asks every plugin in turn;
    the first non-``None`` answer wins (stops at first non-None result).
    Check types without importing a framework that is not imported yet:
    ``sys.modules.get("torch")`` tells whether a torch object can exist at all.
    """


@hookspec(firstresult=True)
def modelcore_save(
    backend: str,
    directory: Path,
    model: Any,
    func: Callable[..., Any] | None,
    options: dict[str, Any],
) -> SaveResult | None:
    """Write ``model`` and ``func`` into the empty local ``directory``.

    Use the framework's native serializer for the model; save ``func`` with
    :func:`modelcore.closure.save_function`. ``options`` carries
    backend-specific deploy arguments (e.g. ONNX example inputs). Do not write
    ``modelcore.yaml``: the core hashes every file and writes the manifest
    last. Return a :class:`SaveResult` (format, extra metadata) for your
    backend, ``None`` for any other. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def modelcore_load(
    backend: str,
    directory: Path,
    manifest: Manifest | None,
    device: str,
) -> Any | None:
    """Load the version in local ``directory`` and return a live model object.

    ``manifest`` is ``None`` for a bare folder in the framework's own format
    (a ``model.onnx`` dropped into the store), served because the spec names
    the backend. ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
    ``"auto"``: load straight onto it where the framework allows. Raise on
    failure (the serving version stays); never return ``None`` for your own
    backend. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def modelcore_predict(backend: str, model: Any, inputs: list[Any]) -> list[Any] | None:
    """Predict a batch: ``inputs`` is a list, return a list of the same length.

    ``model`` is what :func:`modelcore_load` returned. Called from an executor
    thread (or an isolated worker), possibly from several threads at once.
    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def modelcore_place(backend: str, model: Any, device: str) -> Any | None:
    """Move a loaded model to ``device`` and return it (the same object or a new one).

    ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (a GPU
    when one is there). A backend without devices returns ``model``
    unchanged. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def modelcore_unload(backend: str, model: Any) -> bool | None:
    """Free what a loaded model holds (GPU memory too); return ``True`` when done.

    Called once, after the last request on that version has finished.
    Stops at first non-None result.
    """


@hookspec
def modelcore_handler_arguments(model_client: Any) -> dict[str, Any] | None:
    """Offer extra constructor arguments to Python handlers, by parameter name.

    A handler class whose ``__init__`` names a parameter you offer receives it;
    the TensorFlow plugin offers ``tensorflow_client``, built on
    ``model_client`` (whose ``get_model(name, version)`` returns what your
    ``modelcore_load`` returned). Results of all plugins are merged.
    """


@hookspec
def modelcore_input_types() -> list[InputType]:
    """Provide request input types (``doubles``, ``strings``, ... or your own).

    Each :class:`InputType` turns one JSON value of a request into the value
    the model's function receives, raising :class:`modelcore.errors.BadRequest`
    with a clear message when the value does not fit.
    """
