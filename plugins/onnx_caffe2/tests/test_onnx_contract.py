"""The onnx backend against the shared contract: a hand-built graph and a PyTorch export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelcore.testing import BackendContract
from modelcore_onnx.testing import affine_model

# torch's exporter trips over its own deprecation inside copyreg; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")

W = np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]], dtype=np.float32)
B = np.array([0.25, -1.0], dtype=np.float32)


def _rows(session, xs):
    # The documented calling convention: the function gets the InferenceSession itself.
    batch = np.stack(xs).astype(np.float32)
    (y,) = session.run(["y"], {"x": batch})
    return [[float(v) for v in row] for row in y]


class TestOnnxGraphContract(BackendContract):
    backend = "onnx"
    expected_format = "onnx"

    def make_model(self):
        return affine_model(W, B)

    def make_func(self):
        return _rows

    def sample_inputs(self):
        return [np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.0, 0.5])]

    def expected_outputs(self, inputs):
        return [(np.asarray(x, dtype=np.float32) @ W + B).tolist() for x in inputs]


def _torch_module() -> torch.nn.Module:
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def _session_rows(session, xs):
    name = session.get_inputs()[0].name
    (y,) = session.run(None, {name: np.stack(xs).astype(np.float32)})
    return y.tolist()


class TestTorchExportContract(BackendContract):
    """A torch module goes through the ONNX exporter when the backend is named."""

    backend = "onnx"
    expected_format = "onnx"
    claims_model = False  # torch modules belong to the pytorch backend unless exported on purpose

    def make_model(self):
        return _torch_module()

    def make_func(self):
        return _session_rows

    def deploy_options(self):
        return {"inputs": torch.zeros(2, 3)}

    def sample_inputs(self):
        return [np.array([0.1, 0.2, 0.3]), np.array([1.0, -1.0, 2.0]), np.zeros(3)]

    def expected_outputs(self, inputs):
        with torch.no_grad():
            out = _torch_module()(torch.tensor(np.stack(inputs), dtype=torch.float32))
        return out.numpy().tolist()
