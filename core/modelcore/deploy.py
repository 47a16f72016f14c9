"""Deployers: save a predict function and a model as a new immutable version in a store."""

from __future__ import annotations

import importlib.metadata as md
import os
from collections.abc import Callable, Sequence
from typing import Any

import cloudpickle

from modelcore.closure import FUNC_FILE
from modelcore.errors import BadRequest, PluginError
from modelcore.integrity import as_key, sign_manifest, signing_key_from_env
from modelcore.manifest import Manifest, hash_tree, now
from modelcore.plugins import ModelcorePluginManager, plugin_manager
from modelcore.store import ModelStore, check_model_name, open_store

PYTHON_CLOSURE = "python_closure"


def deploy(
    store: str | os.PathLike[str] | ModelStore,
    name: str,
    func: Callable[..., Any] | None,
    *,
    model: Any = None,
    backend: str | None = None,
    version: int | None = None,
    input_type: str = "doubles",
    pkgs_to_install: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    warmup_inputs: Sequence[Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    pm: ModelcorePluginManager | None = None,
    signing_key: bytes | str | None = None,
) -> int:
    """Save ``func`` (and ``model``) as a new version of ``name`` in ``store``; return the version.

    Without ``backend=``, the installed plugins are asked to claim ``model``
    (a torch module goes to the PyTorch backend); with no model, the function
    is a Python closure. ``version=None`` takes the next integer; an existing
    version is never overwritten. ``options`` are passed to the backend's save
    hook (e.g. example inputs for an ONNX export). ``warmup_inputs`` (request
    inputs, as JSON values) are predicted once after each load, before the
    version serves: a version that fails them never replaces the serving one.
    With ``signing_key`` (default: ``MODELCORE_SIGNING_KEY`` when set), the
    manifest carries an HMAC that servers with ``require_signed`` check.
    """
    pm = pm or plugin_manager()
    check_model_name(name)
    if input_type not in pm.input_types():
        known = ", ".join(sorted(pm.input_types()))
        raise BadRequest(f"unknown input_type {input_type!r} (known: {known})")
    if backend is None:
        if model is None:
            backend = PYTHON_CLOSURE
        else:
            backend = pm.claim(model)
            if backend is None:
                raise PluginError(
                    f"no installed backend can save a {type(model).__module__}.{type(model).__qualname__}; "
                    "install the plugin for its framework (`modelcore plugins` lists the installed ones) "
                    "or pass backend=..."
                )
    chosen = pm.backend(backend)
    key = as_key(signing_key) if signing_key else signing_key_from_env()
    target = open_store(store, storage_options)
    with target.staging(name) as staged:
        result = chosen.save(staged, model, func, dict(options or {}))
        has_function = (staged / FUNC_FILE).exists()
        manifest = Manifest(
            name=name,
            version=1,  # set by publish
            backend=backend,
            created=now(),
            format=result.format,
            input_type=input_type,
            cloudpickle_version=cloudpickle.__version__ if has_function else None,
            modelcore_version=_dist_version("modelcore"),
            frameworks={d: v for d in chosen.info.frameworks if (v := _dist_version(d))},
            pkgs_to_install=list(pkgs_to_install or []),
            has_function=has_function,
            files=hash_tree(staged),
            metadata={
                **result.metadata,
                **(metadata or {}),
                **({"warmup_inputs": list(warmup_inputs)} if warmup_inputs else {}),
            },
        )
        sign = (lambda m: sign_manifest(m, key)) if key else None
        return target.publish(name, staged, manifest, version, sign=sign)


def deploy_python_closure(
    store: str | os.PathLike[str] | ModelStore,
    name: str,
    func: Callable[[list[Any]], list[Any]],
    *,
    version: int | None = None,
    input_type: str = "doubles",
    pkgs_to_install: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    warmup_inputs: Sequence[Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    signing_key: bytes | str | None = None,
) -> int:
    """Clipper's Python closure deployer: ``func`` takes a list of inputs, returns a list as long.

    Everything ``func`` closes over is saved with cloudpickle; modules it
    imports must be installed where it is served (``pkgs_to_install``).
    """
    return deploy(
        store,
        name,
        func,
        backend=PYTHON_CLOSURE,
        version=version,
        input_type=input_type,
        pkgs_to_install=pkgs_to_install,
        metadata=metadata,
        warmup_inputs=warmup_inputs,
        storage_options=storage_options,
        signing_key=signing_key,
    )


def _dist_version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None
