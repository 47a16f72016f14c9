"""The ``pytorch`` backend's hooks. torch is imported inside them, never at import time.

A version holds the module in one of the formats of
:mod:`modelcore_pytorch.formats` and, when one was deployed, the predict
function (``func.pkl``). ``func(model, inputs)`` receives the module already
on the serving device, in eval mode, under ``torch.inference_mode()``.
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
from modelcore_pytorch import formats
from modelcore_pytorch.devices import resolve_device
from modelcore_pytorch.runtime import TorchModel

BACKEND = "pytorch"


@hookimpl
def modelcore_backends() -> list[BackendInfo]:
    return [
        BackendInfo(
            BACKEND, "PyTorch modules (TorchScript, torch.export or a pickled module)", ("torch",)
        )
    ]


@hookimpl
def modelcore_claim(model: Any) -> str | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None  # no torch object can exist in this process
    nn = getattr(torch, "nn", None)  # None while torch itself is still importing
    if nn is not None and isinstance(model, nn.Module):  # ScriptModules included
        return BACKEND
    export = sys.modules.get("torch.export")
    if export is not None and isinstance(model, export.ExportedProgram):
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
        raise StoreError("the pytorch backend needs a module: deploy(..., model=your_module)")
    if func is not None:
        save_function(func, directory)
    return formats.save_model(directory, model, options)


@hookimpl
def modelcore_load(
    backend: str, directory: Path, manifest: Manifest | None, device: str
) -> TorchModel | None:
    if backend != BACKEND:
        return None
    target = resolve_device(device)
    if manifest is None:
        fmt, path = formats.find_bare_artifact(directory)
        module, program = formats.load_bare(path, fmt, target)
        return TorchModel(module, None, target, fmt, program)
    if manifest.format not in formats.FORMATS:
        raise StoreError(
            f"{manifest.name} v{manifest.version}: unknown pytorch format {manifest.format!r} "
            f"(this plugin reads {', '.join(formats.FORMATS)}); upgrade modelcore-pytorch"
        )
    func = load_function(directory, manifest) if manifest.has_function else None
    module, program = formats.load_module(directory, manifest.format, target)
    return TorchModel(module, func, target, manifest.format, program)


@hookimpl
def modelcore_predict(backend: str, model: TorchModel, inputs: list[Any]) -> list[Any] | None:
    if backend != BACKEND:
        return None
    return model.predict(inputs)


@hookimpl
def modelcore_place(backend: str, model: TorchModel, device: str) -> TorchModel | None:
    if backend != BACKEND:
        return None
    return model.placed(resolve_device(device))


@hookimpl
def modelcore_unload(backend: str, model: TorchModel) -> bool | None:
    if backend != BACKEND:
        return None
    model.release()
    # Modules often sit in reference cycles; collect them before asking CUDA for the memory.
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()  # a no-op where CUDA was never initialised
    return True
