"""Clipper's deployers for ONNX: an ONNX model as is, or a PyTorch model exported to ONNX."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from modelcore.deploy import deploy
from modelcore.errors import PluginError
from modelcore.store import ModelStore

BACKEND = "onnx"

PredictFunc = Callable[[Any, list[Any]], list[Any]]


def deploy_onnx_model(
    store: str | os.PathLike[str] | ModelStore,
    name: str,
    func: PredictFunc | None,
    onnx_model: Any,
    *,
    version: int | None = None,
    input_type: str = "doubles",
    pkgs_to_install: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Deploy an ONNX model (``onnx.ModelProto``, path to a ``.onnx`` file, or bytes); return the version.

    ``func(session, inputs)`` receives the ``onnxruntime.InferenceSession`` and
    the list of inputs and returns a list as long. With ``func=None`` the
    default predict stacks the inputs into one batch for the model's single
    input and answers one row of its first output per input.
    """
    return deploy(
        store,
        name,
        func,
        model=onnx_model,
        backend=BACKEND,
        version=version,
        input_type=input_type,
        pkgs_to_install=pkgs_to_install,
        metadata=metadata,
        storage_options=storage_options,
    )


def deploy_pytorch_model(
    store: str | os.PathLike[str] | ModelStore,
    name: str,
    func: PredictFunc | None,
    pytorch_model: Any,
    inputs: Any,
    *,
    version: int | None = None,
    input_type: str = "doubles",
    pkgs_to_install: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Export a ``torch.nn.Module`` to ONNX with example ``inputs`` and deploy it (Clipper's signature).

    ``inputs`` is one example tensor (or array), or a tuple of them for a
    module with several inputs; dimension 0 of every input, and so of every
    output, is exported as a dynamic batch dimension. The module is exported
    in eval mode. Needs ``torch`` and ``onnxscript`` (``pip install
    modelcore-onnx[torch]``). ``func(session, inputs)`` as for
    :func:`deploy_onnx_model`.
    """
    import torch

    if not isinstance(pytorch_model, torch.nn.Module):
        raise PluginError(
            f"deploy_pytorch_model needs a torch.nn.Module, got {type(pytorch_model).__qualname__}"
        )
    return deploy(
        store,
        name,
        func,
        model=pytorch_model,
        backend=BACKEND,
        version=version,
        input_type=input_type,
        pkgs_to_install=pkgs_to_install,
        metadata=metadata,
        options={"inputs": inputs},
        storage_options=storage_options,
    )
