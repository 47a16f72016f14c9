"""The ``onnx`` backend: ONNX models run by ONNX Runtime (Clipper's Caffe2 deployer, today).

A version holds ``model.onnx`` (plus ``model.onnx.data`` past 2 GB) and,
when deployed with one, ``func.pkl``: the function is called as
``func(session, inputs)`` with the ``onnxruntime.InferenceSession``. A bare
``model.onnx`` folder is served by :func:`modelcore_onnx.session.default_predict`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelcore.closure import load_function, save_function
from modelcore.errors import StoreError
from modelcore.hookspecs import hookimpl
from modelcore.manifest import Manifest
from modelcore.types import BackendInfo, SaveResult
from modelcore_onnx.model_io import MODEL_FILE, graph_metadata, write_model
from modelcore_onnx.session import (
    OnnxModel,
    check_default_servable,
    new_session,
    providers_for,
)

BACKEND = "onnx"
FORMAT = "onnx"


@hookimpl
def modelcore_backends() -> list[BackendInfo]:
    return [BackendInfo(BACKEND, "ONNX models run by ONNX Runtime", ("onnxruntime", "onnx"))]


@hookimpl
def modelcore_claim(model: Any) -> str | None:
    # A torch module is left to the pytorch backend; deploy_pytorch_model exports it here.
    onnx = sys.modules.get("onnx")
    if onnx is not None and isinstance(model, onnx.ModelProto):
        return BACKEND
    return None


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
    if model is None:
        raise StoreError("the onnx backend needs a model: an onnx.ModelProto or a .onnx file")
    path, source = write_model(model, directory, options)
    if func is not None:
        save_function(func, directory)
    return SaveResult(format=FORMAT, metadata={"onnx": {**graph_metadata(path), "source": source}})


@hookimpl
def modelcore_load(
    backend: str, directory: Path, manifest: Manifest | None, device: str
) -> OnnxModel | None:
    if backend != BACKEND:
        return None
    path = directory / MODEL_FILE
    if not path.is_file():
        raise StoreError(f"{directory}: no {MODEL_FILE} in this version")
    # A bare folder (no manifest) is the framework's own format: no function is read from it.
    has_function = manifest is not None and manifest.has_function
    func = load_function(directory, manifest) if has_function else None
    providers = providers_for(device)
    session = new_session(path, providers, strict=device != "auto")
    if func is None:
        check_default_servable(session, path)
    return OnnxModel(path=path, session=session, providers=providers, func=func, device=device)


@hookimpl
def modelcore_predict(backend: str, model: Any, inputs: list[Any]) -> list[Any] | None:
    if backend != BACKEND:
        return None
    return model.predict(inputs)


@hookimpl
def modelcore_place(backend: str, model: Any, device: str) -> Any:
    if backend != BACKEND:
        return None
    return model.place(device)


@hookimpl
def modelcore_unload(backend: str, model: Any) -> bool | None:
    if backend != BACKEND:
        return None
    model.unload()
    return True
