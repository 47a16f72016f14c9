"""Importing mxnet, and device names from the spec (``cpu``, ``cuda[:N]``, ``auto``) as contexts."""

from __future__ import annotations

import os
import re
from typing import Any

from modelcore.errors import PluginError

_DEVICE = re.compile(r"^(cpu|auto|cuda(:([0-9]+))?)$")

REQUIREMENTS = ("mxnet==1.9.1", "numpy>=1.23.2,<1.24")


def import_mxnet() -> Any:
    """Import mxnet, or say why it cannot be imported here and where it runs instead."""
    # Every executor bind otherwise logs "Subgraph backend MKLDNN is activated" to stderr.
    os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
    try:
        import mxnet
    except Exception as exc:  # ImportError, or AttributeError from numpy>=1.24 (np.bool)
        raise PluginError(
            "mxnet cannot be imported in this environment; the mxnet backend runs in an "
            f"isolated worker whose environment has {' and '.join(REQUIREMENTS)} (and no onnx). "
            'Deploy from such an environment (pip install "modelcore-mxnet[framework]")',
            cause=f"{type(exc).__name__}: {exc}",
        ) from exc
    return mxnet


def resolve_context(device: str | None) -> Any:
    """The ``mx.Context`` for a spec's ``device``; ``auto`` is GPU 0 when MXNet sees one.

    Asking for a GPU that this MXNet build cannot see (the ``mxnet`` wheel is
    CPU-only; GPUs need ``mxnet-cu112``) is an error at load, not at the first request.
    """
    mx = import_mxnet()
    name = (device or "cpu").strip().lower()
    match = _DEVICE.match(name)
    if match is None:
        raise PluginError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")
    gpus = _num_gpus(mx)
    if name == "auto":
        return mx.gpu(0) if gpus > 0 else mx.cpu()
    if name == "cpu":
        return mx.cpu()
    index = int(match.group(3) or 0)
    if gpus == 0:
        raise PluginError(
            f"device {device!r}: mxnet {mx.__version__} sees no GPU here; serve on device: cpu "
            "(or auto), or build the worker environment with a CUDA build (mxnet-cu112)"
        )
    if index >= gpus:
        raise PluginError(
            f"device {device!r}: mxnet sees {gpus} GPU(s) (cuda:0 to cuda:{gpus - 1})"
        )
    return mx.gpu(index)


def _num_gpus(mx: Any) -> int:
    try:
        return int(mx.context.num_gpus())
    except Exception:  # a CUDA build without a driver raises rather than answering 0
        return 0
