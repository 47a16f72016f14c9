"""Clipper's PyTorch deployer: a predict function plus a ``torch.nn.Module``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from modelcore.deploy import deploy
from modelcore.store import ModelStore

BACKEND = "pytorch"


def deploy_pytorch_model(
    store: str | os.PathLike[str] | ModelStore,
    name: str,
    func: Callable[[Any, list[Any]], list[Any]] | None,
    pytorch_model: Any,
    *,
    version: int | None = None,
    input_type: str = "doubles",
    pkgs_to_install: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    example_inputs: Any = None,
    save_format: str = "auto",
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Save ``pytorch_model`` and ``func`` as a new version of ``name`` in ``store``; return it.

    ``func(model, inputs)`` gets the loaded model, already on the serving
    device and in eval mode, and the list of decoded inputs; it returns a list
    as long. It runs under ``torch.inference_mode()``. With ``func=None`` the
    inputs are stacked into one float batch and each output row is answered.

    The model is saved as TorchScript when ``torch.jit.script`` compiles it,
    so it reloads without its class being importable. With
    ``example_inputs`` (a tensor or a tuple of tensors for ``forward``, batch
    first), ``torch.export`` with a dynamic batch size is tried first. When
    neither works, it is saved as Clipper did: a state dict plus the
    cloudpickled module (format ``pickled-module``), whose loading runs code.
    ``save_format`` (``auto``, ``torchscript``, ``torch-export``,
    ``pickled-module``) forces one format and fails instead of falling back.
    """
    options: dict[str, Any] = {"save_format": save_format}
    if example_inputs is not None:
        options["example_inputs"] = example_inputs
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
        options=options,
        storage_options=storage_options,
    )
