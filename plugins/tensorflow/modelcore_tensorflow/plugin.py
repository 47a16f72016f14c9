"""The ``tensorflow`` backend's hooks: SavedModels saved, loaded, run, placed and freed.

TensorFlow is imported only inside the hooks that need it, so a server that
serves no TensorFlow model never pays for importing it.
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelcore.closure import load_function
from modelcore.errors import StoreError
from modelcore.hookspecs import hookimpl
from modelcore.manifest import Manifest
from modelcore.types import BackendInfo, SaveResult
from modelcore_tensorflow.client import TensorFlowClient
from modelcore_tensorflow.default_predict import default_predict
from modelcore_tensorflow.deployer import BACKEND
from modelcore_tensorflow.devices import tf_device
from modelcore_tensorflow.model import TensorFlowModel
from modelcore_tensorflow.saving import FORMAT, is_keras_model, is_tf_module, save_version
from modelcore_tensorflow.signature import DEFAULT_SIGNATURE, SAVED_MODEL_DIR, find_saved_model

# The distributions TensorFlow ships as; a manifest records those installed.
_FRAMEWORKS = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly", "keras")


@hookimpl
def modelcore_backends() -> list[BackendInfo]:
    installed = tuple(d for d in _FRAMEWORKS if _installed(d)) or ("tensorflow",)
    return [BackendInfo(BACKEND, "TensorFlow SavedModels (Keras 3 models, tf.Modules)", installed)]


@hookimpl
def modelcore_claim(model: Any) -> str | None:
    return BACKEND if is_keras_model(model) or is_tf_module(model) else None


@hookimpl
def modelcore_save(
    backend: str,
    directory: Path,
    model: Any,
    func: Callable[..., Any] | None,
    options: dict[str, Any],
) -> SaveResult | None:
    if backend != BACKEND:
        return None
    return save_version(directory, model, func, options)


@hookimpl
def modelcore_load(
    backend: str, directory: Path, manifest: Manifest | None, device: str
) -> TensorFlowModel | None:
    if backend != BACKEND:
        return None
    if manifest is None:
        # A bare folder: TF Serving's <model>/<version>/saved_model.pb, served by its signature.
        return TensorFlowModel(find_saved_model(directory), device=tf_device(device))
    if manifest.format != FORMAT:
        raise StoreError(
            f"{directory}: format {manifest.format!r} is not one the tensorflow backend reads "
            f"({FORMAT!r})"
        )
    func = load_function(directory, manifest) if manifest.has_function else None
    signature = manifest.metadata.get("signature") or {}
    return TensorFlowModel(
        directory / SAVED_MODEL_DIR,
        device=tf_device(device),
        func=func,
        signature_name=signature.get("name", DEFAULT_SIGNATURE),
    )


@hookimpl
def modelcore_predict(backend: str, model: TensorFlowModel, inputs: list[Any]) -> list[Any] | None:
    if backend != BACKEND:
        return None
    if model.func is None:
        return default_predict(model, inputs)
    return model.func(model, inputs)


@hookimpl
def modelcore_place(backend: str, model: TensorFlowModel, device: str) -> TensorFlowModel | None:
    if backend != BACKEND:
        return None
    model.move_to(tf_device(device))
    return model


@hookimpl
def modelcore_unload(backend: str, model: TensorFlowModel) -> bool | None:
    if backend != BACKEND:
        return None
    # Not keras.backend.clear_session(): it resets Keras' process-wide state (the layer
    # names and graphs of every other model) and owns nothing a loaded SavedModel holds.
    model.release()
    return True


@hookimpl
def modelcore_handler_arguments(model_client: Any) -> dict[str, Any]:
    return {"tensorflow_client": TensorFlowClient(model_client)}


def _installed(distribution: str) -> bool:
    try:
        md.version(distribution)
    except md.PackageNotFoundError:
        return False
    return True
