"""MLServer custom runtimes for bench/peers.py: the same two models modelcore serves there.

Runs inside MLServer's own virtual environment (never modelcore's): bench/peers.py
copies this file next to each model-settings.json, whose ``implementation`` names
``_mlserver_runtime.Tiny`` or ``_mlserver_runtime.MLP``.

- Tiny: the dot product of each 16-vector with ``np.linspace(-1, 1, 16)`` (as
  bench/overhead.py and bench/_bare_server.py).
- MLP: the PyTorch MLP 256 -> 1024 -> 1024 -> 10 built with ``torch.manual_seed(0)``
  and one torch thread (as bench/batching.py), so both servers hold the same weights.

Inputs are Open Inference Protocol tensors of shape ``[n, features]`` (n is 1 per
request; larger if MLServer's own adaptive batching is turned on).
"""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class Tiny(MLModel):
    async def load(self) -> bool:
        self._weights = np.linspace(-1, 1, 16)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        xs = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float64).reshape(-1, 16)
        out = np.array([float(np.dot(self._weights, x)) for x in xs])
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output(name="y", payload=out)]
        )


class MLP(MLModel):
    async def load(self) -> bool:
        import torch

        torch.set_num_threads(1)
        torch.manual_seed(0)
        self._torch = torch
        self._net = torch.nn.Sequential(
            torch.nn.Linear(256, 1024),
            torch.nn.ReLU(),
            torch.nn.Linear(1024, 1024),
            torch.nn.ReLU(),
            torch.nn.Linear(1024, 10),
        ).eval()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        xs = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32).reshape(-1, 256)
        with self._torch.inference_mode():
            out = self._net(self._torch.from_numpy(xs)).numpy()
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output(name="y", payload=out)]
        )
