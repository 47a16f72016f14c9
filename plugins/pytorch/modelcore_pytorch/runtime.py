"""A loaded PyTorch version, and the predict used when no function was deployed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelcore.errors import BadRequest, PredictionError


@dataclass
class TorchModel:
    """What ``modelcore_load`` returns: the module, on ``device``, and the user's function."""

    module: Any
    """A ``torch.nn.Module`` (a ScriptModule, an exported GraphModule, or the user's class)."""
    func: Callable[..., Any] | None
    device: Any
    """The ``torch.device`` the module's weights are on."""
    format: str
    program: Any = None
    """The ``ExportedProgram`` of a ``torch-export`` version: it, not the module, is moved."""

    def predict(self, inputs: list[Any]) -> list[Any]:
        import torch

        with torch.inference_mode():
            if self.func is not None:
                return self.func(self.module, inputs)
            return default_predict(self.module, self.device, inputs)

    def placed(self, device: Any) -> TorchModel:
        """This model on ``device`` (a ``torch.device``); the same object when already there."""
        if device == self.device:
            return self
        if self.program is not None:
            # An exported graph may hold device constants that Module.to() cannot see.
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(self.program, device)
            return dataclasses.replace(
                self, module=program.module(), program=program, device=device
            )
        return dataclasses.replace(self, module=self.module.to(device), device=device)

    def release(self) -> None:
        self.module = None
        self.program = None
        self.func = None


def default_predict(module: Any, device: Any, inputs: list[Any]) -> list[Any]:
    """Stack ``inputs`` into one float batch on ``device``, run ``module``, answer one row each."""
    import torch

    try:
        batch = np.stack([np.asarray(x) for x in inputs])
    except ValueError as exc:
        raise BadRequest(
            "the inputs have different shapes and cannot be stacked into one batch", cause=str(exc)
        ) from exc
    if batch.dtype.kind not in "biuf":
        raise BadRequest(
            f"the default PyTorch predict needs numbers, got {batch.dtype} inputs; "
            "deploy a predict function for other inputs"
        )
    tensor = torch.as_tensor(batch, dtype=floating_dtype(module), device=device)
    return output_rows(module(tensor), len(inputs))


def floating_dtype(module: Any) -> Any:
    """The dtype of the module's first floating parameter (float32 when it has none)."""
    import torch

    for param in module.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def output_rows(output: Any, n: int) -> list[Any]:
    """Split a batch output (a tensor, or a tuple, list or dict of them) into ``n`` rows."""
    import torch

    if isinstance(output, torch.Tensor):
        if output.ndim == 0 or output.shape[0] != n:
            raise PredictionError(
                f"the model answered a tensor of shape {tuple(output.shape)} for a batch of {n}; "
                "the default predict needs one output row per input"
            )
        return output.detach().cpu().tolist()
    if isinstance(output, (tuple, list)):
        columns = [output_rows(part, n) for part in output]
        return [list(row) for row in zip(*columns, strict=True)]
    if isinstance(output, dict):
        named = {key: output_rows(part, n) for key, part in output.items()}
        return [{key: rows[i] for key, rows in named.items()} for i in range(n)]
    raise PredictionError(
        f"the model returned a {type(output).__name__}; the default predict handles tensors "
        "and tuples, lists or dicts of tensors: deploy a predict function for the rest"
    )
