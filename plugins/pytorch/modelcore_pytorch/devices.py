"""Device names from the spec (``cpu``, ``cuda``, ``cuda:N``, ``auto``) as torch devices."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from modelcore.errors import PluginError

if TYPE_CHECKING:
    import torch

_DEVICE = re.compile(r"^(cpu|auto|cuda(:[0-9]+)?)$")


def resolve_device(device: str | None) -> torch.device:
    """The torch device for a spec's ``device``; ``auto`` is a GPU when torch sees one.

    A bare ``cuda`` becomes ``cuda:<current>`` so that two names of the same
    GPU compare equal. Asking for a GPU that torch cannot see is an error that
    says so, rather than a CUDA error at the first request.
    """
    import torch

    name = (device or "cpu").strip().lower()
    if not _DEVICE.match(name):
        raise PluginError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise PluginError(
            f"device {device!r}: torch {torch.__version__} sees no CUDA device here; "
            "serve on device: cpu (or auto), or install a CUDA build of torch"
        )
    resolved = torch.device(name)
    if resolved.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if resolved.index >= torch.cuda.device_count():
        raise PluginError(
            f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s) "
            f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
        )
    return resolved
