"""Clipper's TensorFlow deployer: a predict function plus a SavedModel, as a new version."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from modelcore.deploy import deploy
from modelcore.plugins import ModelcorePluginManager
from modelcore.store import ModelStore

BACKEND = "tensorflow"


def deploy_tensorflow_model(
    store: str | os.PathLike[str] | ModelStore,
    name: str,
    func: Callable[[Any, list[Any]], list[Any]] | None,
    tf_model_or_saved_model_path: Any,
    *,
    version: int | None = None,
    input_type: str = "doubles",
    pkgs_to_install: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    signature_name: str | None = None,
    signatures: Any = None,
    input_signature: Any = None,
    storage_options: dict[str, Any] | None = None,
    pm: ModelcorePluginManager | None = None,
) -> int:
    """Save ``func`` and a TensorFlow model as a new version of ``name``; return the version.

    ``tf_model_or_saved_model_path`` is a Keras 3 model (written with
    ``model.export``), a ``tf.Module`` (``tf.saved_model.save``) or the path of a
    SavedModel folder (copied). ``func(model, inputs)`` receives the loaded
    :class:`~modelcore_tensorflow.model.TensorFlowModel` and the batch of inputs and
    returns one output per input; ``func=None`` serves the signature's outputs as they
    are (see :mod:`modelcore_tensorflow.default_predict`).

    ``signature_name`` picks the signature to serve (``serving_default``);
    ``signatures`` is passed to ``tf.saved_model.save`` and ``input_signature`` to
    Keras' ``export``, for models whose signature cannot be inferred.
    """
    options = {
        key: value
        for key, value in (
            ("signature_name", signature_name),
            ("signatures", signatures),
            ("input_signature", input_signature),
        )
        if value is not None
    }
    return deploy(
        store,
        name,
        func,
        model=tf_model_or_saved_model_path,
        backend=BACKEND,
        version=version,
        input_type=input_type,
        pkgs_to_install=pkgs_to_install,
        metadata=metadata,
        options=options,
        storage_options=storage_options,
        pm=pm,
    )
