"""modelcore device names (``cpu``, ``cuda``, ``cuda:N``, ``auto``) as TensorFlow device strings."""

from __future__ import annotations

import re

from modelcore.errors import PluginError

_CUDA = re.compile(r"^cuda(?::([0-9]+))?$")


def tf_device(device: str) -> str:
    """``"/CPU:0"`` or ``"/GPU:N"`` for a modelcore device; raise when the GPU asked for is absent.

    ``auto`` takes the first GPU TensorFlow sees, else the CPU.
    """
    import tensorflow as tf

    if device == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    if device == "auto":
        return "/GPU:0" if gpus else "/CPU:0"
    match = _CUDA.match(device)
    if match is None:
        raise PluginError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")
    index = int(match.group(1) or 0)
    if index >= len(gpus):
        seen = f"{len(gpus)} GPU(s)" if gpus else "no GPU"
        raise PluginError(
            f"device {device!r} asked for, but TensorFlow sees {seen}; "
            "use device: auto to fall back to the CPU"
        )
    return f"/GPU:{index}"
