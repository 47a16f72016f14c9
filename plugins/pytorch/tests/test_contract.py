"""The shared backend contract, once per format the pytorch backend writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelcore.testing import BackendContract

# TorchScript is deprecated in favour of torch.export, and is still the format that
# needs no example inputs; its warnings are expected here.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


class TwoHeads(torch.nn.Module):
    """Python-only constructs in forward (``**kwargs``, a dict comprehension): not scriptable."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 1), "b": torch.nn.Linear(3, 1)})

    def forward(self, x: torch.Tensor, **kwargs: float) -> torch.Tensor:
        outs = {name: head(x) for name, head in self.heads.items()}
        return torch.cat([outs[name] for name in sorted(outs)], dim=1) * kwargs.get("scale", 1.0)


def rows_func():
    # Nested, so cloudpickle saves it by value rather than by this test module's name.
    def predict(model, xs):
        device = next(model.parameters()).device
        batch = torch.as_tensor(np.stack(xs), dtype=torch.float32, device=device)
        return model(batch).detach().cpu().tolist()

    return predict


SAMPLES = [np.array([1.0, 2.0, 3.0]), np.array([-0.5, 0.0, 0.25]), np.array([4.0, -2.0, 1.0])]


class TestTorchScriptContract(BackendContract):
    backend = "pytorch"
    expected_format = "torchscript"

    def make_model(self):
        return mlp()

    def make_func(self):
        return rows_func()

    def sample_inputs(self):
        return SAMPLES


class TestTorchExportContract(TestTorchScriptContract):
    expected_format = "torch-export"

    def deploy_options(self):
        return {"example_inputs": torch.zeros(1, 3)}


class TestPickledModuleContract(TestTorchScriptContract):
    expected_format = "pickled-module"

    def make_model(self):
        return TwoHeads()


class TestDefaultPredictContract(TestTorchScriptContract):
    """No function deployed: inputs are stacked into one batch, one output row each."""

    def make_func(self):
        return None

    def expected_outputs(self, inputs):
        with torch.no_grad():
            return mlp()(torch.as_tensor(np.stack(inputs), dtype=torch.float32)).tolist()
