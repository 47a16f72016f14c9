"""Clipper's MXNet deployer: a predict function plus a Module or a Gluon HybridBlock."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from modelcore.deploy import deploy
from modelcore.store import ModelStore

BACKEND = "mxnet"


def deploy_mxnet_model(
    store: str | os.PathLike[str] | ModelStore,
    name: str,
    func: Callable[[Any, list[Any]], list[Any]] | None,
    mxnet_model: Any,
    mxnet_data_shapes: Sequence[Any] | None = None,
    *,
    version: int | None = None,
    input_type: str = "doubles",
    pkgs_to_install: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    warmup_inputs: Sequence[Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Save ``mxnet_model`` and ``func`` as a new version of ``name`` in ``store``; return it.

    Run this where mxnet is installed (MXNet 1.9.1 with numpy<1.24); the
    version is then served by an isolated worker. ``mxnet_model`` is a bound
    ``mx.mod.Module`` with initialized parameters (saved with
    ``save_checkpoint(prefix, 0)``) or a Gluon ``HybridBlock`` (hybridized, run
    once on zeros when it has not run yet, and saved with ``export``).
    ``mxnet_data_shapes`` lists ``(name, shape)`` pairs or ``mx.io.DataDesc``
    objects, batch dimension included, one per data input: the Module is bound
    with them when the version loads. It may be left out for a bound Module
    (its current shapes are used) or a block that already ran hybridized.

    ``func(model, inputs)`` gets the bound ``Module`` or the ``SymbolBlock``
    read back from the files, and the list of inputs; it returns a list as
    long. With ``func=None`` the inputs are stacked into one batch and each
    input gets its output row as a list.
    """
    return deploy(
        store,
        name,
        func,
        model=mxnet_model,
        backend=BACKEND,
        version=version,
        input_type=input_type,
        pkgs_to_install=pkgs_to_install,
        metadata=metadata,
        options={"mxnet_data_shapes": list(mxnet_data_shapes or [])},
        warmup_inputs=warmup_inputs,
        storage_options=storage_options,
    )
