"""The live model: an ONNX Runtime session on the providers a device asks for, plus the function.

``onnxruntime`` is imported inside the functions that build sessions, so a
server that never loads an ONNX model never imports it.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcore.errors import LoadError, PredictionError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

Provider = str | tuple[str, dict[str, Any]]

# ONNX Runtime names element types "tensor(float)"; the default predict builds its batch with these.
_NUMPY_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


def providers_for(device: str) -> list[Provider]:
    """The execution providers for ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

    An explicit CUDA device without ONNX Runtime's CUDA provider is an error (a
    silent CPU fallback would hide a misconfigured server); ``auto`` falls back.
    """
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device == "cpu":
        return [CPU]
    if device == "auto":
        return [(CUDA, {"device_id": 0}), CPU] if CUDA in available else [CPU]
    match = re.fullmatch(r"cuda(?::([0-9]+))?", device)
    if match is None:
        raise LoadError(f"unknown device {device!r}; use cpu, auto, cuda or cuda:N")
    if CUDA not in available:
        raise LoadError(
            f"device {device!r} needs ONNX Runtime's {CUDA}, and this onnxruntime "
            f"{onnxruntime.__version__} offers only {', '.join(available)}; "
            "install onnxruntime-gpu in place of onnxruntime, or serve with device: cpu"
        )
    return [(CUDA, {"device_id": int(match.group(1) or 0)}), CPU]


def new_session(path: Path, providers: list[Provider], *, strict: bool = True) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path`` (external data is read beside it).

    ``strict`` refuses a session that fell back to the CPU when CUDA was asked
    for; ``device: auto`` is not strict.
    """
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=providers)
    except Exception as exc:
        raise LoadError(
            f"{path}: ONNX Runtime cannot load the model", cause=f"{type(exc).__name__}: {exc}"
        ) from exc
    wanted = _names(providers)
    if strict and wanted[0] != CPU and wanted[0] not in session.get_providers():
        # ONNX Runtime falls back to the CPU with only a warning when CUDA fails to start.
        raise LoadError(
            f"{path}: ONNX Runtime did not start {wanted[0]} (it runs on "
            f"{', '.join(session.get_providers())}); check the CUDA and cuDNN libraries "
            "that onnxruntime-gpu needs"
        )
    return session


@dataclass
class OnnxModel:
    """What ``modelcore_load`` returns: the session, the user's function, and where it runs.

    ``func(session, inputs)`` predicts; without a function (a bare ``model.onnx``)
    :func:`default_predict` does.
    """

    path: Path
    session: Any
    providers: list[Provider]
    func: Callable[[Any, list[Any]], list[Any]] | None = None
    device: str = "cpu"

    def predict(self, inputs: list[Any]) -> list[Any]:
        if self.session is None:
            raise PredictionError(f"{self.path}: this ONNX model was unloaded")
        if self.func is None:
            return default_predict(self.session, inputs)
        return self.func(self.session, inputs)

    def place(self, device: str) -> OnnxModel:
        """Rebuild the session on ``device``'s providers (a no-op when they are the same)."""
        providers = providers_for(device)
        if providers != self.providers:
            self.session = None  # free the old session before the new one takes memory
            gc.collect()
            self.session = new_session(self.path, providers, strict=device != "auto")
            self.providers = providers
        self.device = device
        return self

    def unload(self) -> None:
        session, self.session = self.session, None
        del session
        self.func = None
        gc.collect()


def check_default_servable(session: Any, path: Path) -> None:
    """Refuse, at load time, a bare model that the default predict cannot feed."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise LoadError(
            f"{path}: without a predict function, a model must take exactly one input "
            f"(this one takes {len(inputs)}: {names}); deploy it with deploy_onnx_model(..., func)"
        )
    if inputs[0].type not in _NUMPY_DTYPES:
        raise LoadError(
            f"{path}: without a predict function, the input must be a tensor "
            f"(input {inputs[0].name!r} is {inputs[0].type})"
        )


def default_predict(session: Any, inputs: list[Any]) -> list[Any]:
    """Stack ``inputs`` into one batch of the first input's dtype; one row of output 0 each.

    A model whose first dimension is fixed at 1, or that has no batch dimension
    at all, is run once per input instead.
    """
    import numpy as np

    first = session.get_inputs()[0]
    dtype = np.dtype(_NUMPY_DTYPES.get(first.type, "float32"))
    samples = [np.asarray(x, dtype=dtype) for x in inputs]
    shape = first.shape or []
    batched = len(shape) == samples[0].ndim + 1
    if batched and shape[0] != 1:
        return [row.tolist() for row in _run(session, first.name, np.stack(samples))]
    outputs = []
    for sample in samples:
        out = _run(session, first.name, sample[np.newaxis] if batched else sample)
        outputs.append(out[0].tolist() if batched else out.tolist())
    return outputs


def _run(session: Any, name: str, batch: Any) -> Any:
    return session.run(None, {name: batch})[0]


def _names(providers: list[Provider]) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]
