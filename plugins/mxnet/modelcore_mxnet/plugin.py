"""The ``mxnet`` backend's hooks. mxnet is imported inside them, never at import time.

MXNet 1.9 needs ``numpy<1.24``, so the backend declares ``isolation="process"``:
the server loads its versions in an isolated worker whose environment is built
from :data:`REQUIREMENTS` (without onnx, which ``import mxnet`` imports when it is
installed). These hooks run there, or in a user's own mxnet environment when
deploying; the server process itself imports this module only to learn the
backend's name and requirements.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelcore.closure import load_function, save_function
from modelcore.errors import StoreError
from modelcore.hookspecs import hookimpl
from modelcore.manifest import Manifest
from modelcore.types import BackendInfo, SaveResult
from modelcore_mxnet.checkpoint import FORMAT, data_shapes, is_mxnet_model, write_checkpoint
from modelcore_mxnet.context import REQUIREMENTS, resolve_context
from modelcore_mxnet.runtime import MxnetModel, open_model

BACKEND = "mxnet"
EXCLUDED = ("onnx",)
"""Distributions kept out of the worker environment: ``import mxnet`` imports onnx if it can."""


@hookimpl
def modelcore_backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            BACKEND,
            "MXNet 1.9 Module checkpoints and Gluon HybridBlocks, run in an isolated worker",
            frameworks=("mxnet",),
            isolation="process",
            requirements=REQUIREMENTS,
            excluded=EXCLUDED,
        )
    ]


@hookimpl
def modelcore_claim(model: Any) -> str | None:
    return BACKEND if is_mxnet_model(model) else None


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
        raise StoreError(
            "the mxnet backend needs a model: deploy_mxnet_model(store, name, func, "
            "mxnet_model, mxnet_data_shapes) with a mx.mod.Module or a gluon HybridBlock"
        )
    meta = write_checkpoint(model, directory, data_shapes(options.get("mxnet_data_shapes")))
    if func is not None:
        save_function(func, directory)
    return SaveResult(format=FORMAT, metadata={"mxnet": meta})


@hookimpl
def modelcore_load(
    backend: str, directory: Path, manifest: Manifest | None, device: str
) -> MxnetModel | None:
    if backend != BACKEND:
        return None
    if manifest is not None and manifest.format not in (FORMAT, None):
        raise StoreError(
            f"{manifest.name} v{manifest.version}: unknown mxnet format {manifest.format!r} "
            f"(this plugin reads {FORMAT}); upgrade modelcore-mxnet"
        )
    context = resolve_context(device)
    # A bare folder (no manifest) is the framework's own format: no function is read from it.
    func = (
        load_function(directory, manifest)
        if manifest is not None and manifest.has_function
        else None
    )
    return open_model(directory, manifest, context, func)


@hookimpl
def modelcore_predict(backend: str, model: MxnetModel, inputs: list[Any]) -> list[Any] | None:
    if backend != BACKEND:
        return None
    return model.predict(inputs)


@hookimpl
def modelcore_place(backend: str, model: MxnetModel, device: str) -> MxnetModel | None:
    if backend != BACKEND:
        return None
    return model.placed(resolve_context(device))


@hookimpl
def modelcore_unload(backend: str, model: MxnetModel) -> bool | None:
    if backend != BACKEND:
        return None
    model.release()
    mx = sys.modules.get("mxnet")
    if mx is not None:
        # The engine frees an array's memory once the operations on it are done.
        mx.nd.waitall()
    gc.collect()
    return True
