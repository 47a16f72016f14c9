"""The shared backend contract: a symbolic Module and a Gluon HybridBlock, with and without a function."""

from __future__ import annotations

import numpy as np
import pytest

from modelcore.testing import BackendContract
from modelcore_mxnet.testing import mlp_block, mlp_module, mlp_reference, mlp_weights

mx = pytest.importorskip("mxnet")

WEIGHTS = mlp_weights(seed=0)
SAMPLES = [np.array([1.0, 2.0, 3.0]), np.array([-0.5, 0.0, 0.25]), np.array([4.0, -2.0, 1.0])]


def module_rows():
    # Nested, so cloudpickle saves it by value (a worker cannot import this test module).
    def predict(module, xs):
        # Module.predict reshapes the bound executor for this batch size.
        return module.predict(mx.nd.array(np.stack(xs))).asnumpy().tolist()

    return predict


def block_rows():
    def predict(block, xs):
        return block(mx.nd.array(np.stack(xs))).asnumpy().tolist()

    return predict


class TestModuleContract(BackendContract):
    backend = "mxnet"
    expected_format = "mxnet-checkpoint"

    def make_model(self):
        return mlp_module(WEIGHTS, batch=2)

    def make_func(self):
        return module_rows()

    def sample_inputs(self):
        return SAMPLES

    def expected_outputs(self, inputs):
        return mlp_reference(WEIGHTS, inputs).tolist()


class TestModuleDefaultPredictContract(TestModuleContract):
    """No function; the graph ends in SoftmaxOutput, whose label input inference must not need."""

    def make_model(self):
        return mlp_module(WEIGHTS, batch=2, softmax=True)

    def make_func(self):
        return None

    def expected_outputs(self, inputs):
        return mlp_reference(WEIGHTS, inputs, softmax=True).tolist()


class TestGluonContract(TestModuleContract):
    def make_model(self):
        return mlp_block(WEIGHTS, hybridize=True)

    def make_func(self):
        return block_rows()

    def deploy_options(self):
        return {"mxnet_data_shapes": [("data", (1, 3))]}


class TestGluonDefaultPredictContract(TestGluonContract):
    def make_func(self):
        return None
