"""Writing a version: a SavedModel in ``saved_model/`` and, when there is one, ``func.pkl``.

Three kinds of model are accepted: a Keras 3 model (written by ``model.export``,
which traces its serving signature), any ``tf.Module`` or other trackable
object (``tf.saved_model.save``), and the path of an existing SavedModel folder
(copied as it is).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelcore.closure import save_function
from modelcore.errors import StoreError
from modelcore.types import SaveResult
from modelcore_tensorflow.signature import (
    DEFAULT_SIGNATURE,
    SAVED_MODEL_DIR,
    describe_signature,
    find_saved_model,
)

FORMAT = "saved_model"


def save_version(
    directory: Path, model: Any, func: Callable[..., Any] | None, options: dict[str, Any]
) -> SaveResult:
    """Write ``model`` as a SavedModel (and ``func``) into ``directory``; describe its signature.

    ``options``: ``signature_name`` (the signature to serve, ``serving_default``),
    ``signatures`` (for ``tf.saved_model.save``) and ``input_signature`` (for Keras'
    ``export``).
    """
    unknown = sorted(set(options) - {"signature_name", "signatures", "input_signature"})
    if unknown:
        raise StoreError(f"unknown tensorflow deploy option(s): {', '.join(unknown)}")
    target = directory / SAVED_MODEL_DIR
    source = _write_saved_model(model, target, options)
    if func is not None:
        save_function(func, directory)
    signature = describe_signature(target, options.get("signature_name") or DEFAULT_SIGNATURE)
    return SaveResult(format=FORMAT, metadata={"source": source, "signature": signature})


def is_keras_model(obj: Any) -> bool:
    """Whether ``obj`` is a Keras 3 model, without importing Keras when nobody has."""
    keras = sys.modules.get("keras")
    model_class = getattr(keras, "Model", None) if keras is not None else None
    return model_class is not None and isinstance(obj, model_class)


def is_tf_module(obj: Any) -> bool:
    """Whether ``obj`` is a ``tf.Module``, without importing TensorFlow when nobody has."""
    tf = sys.modules.get("tensorflow")
    module_class = getattr(tf, "Module", None) if tf is not None else None
    return module_class is not None and isinstance(obj, module_class)


def _write_saved_model(model: Any, target: Path, options: dict[str, Any]) -> str:
    """Write the SavedModel at ``target``; return what it was made from (for the manifest)."""
    if isinstance(model, (str, os.PathLike)):
        source = find_saved_model(Path(model))
        shutil.copytree(source, target)
        return "saved_model_folder"
    if is_keras_model(model):
        kwargs = {}
        if options.get("input_signature") is not None:
            kwargs["input_signature"] = options["input_signature"]
        _run_serializer(model, lambda: model.export(str(target), verbose=False, **kwargs))
        return "keras"
    import tensorflow as tf

    trackable = tf.__internal__.tracking.Trackable
    if not isinstance(model, trackable):
        raise StoreError(
            f"the tensorflow backend saves a Keras model, a tf.Module or the path of a "
            f"SavedModel folder, not a {type(model).__module__}.{type(model).__qualname__}"
        )
    signatures = options.get("signatures")
    _run_serializer(model, lambda: tf.saved_model.save(model, str(target), signatures=signatures))
    return "tf.Module"


def _run_serializer(model: Any, write: Callable[[], Any]) -> None:
    try:
        write()
    except Exception as exc:
        raise StoreError(
            f"TensorFlow cannot save this {type(model).__name__} as a SavedModel",
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc
