"""The tensorflow backend against the shared contract: a Keras model with a function, a tf.Module without."""

from __future__ import annotations

import numpy as np

from modelcore.testing import BackendContract

WEIGHTS = np.array([[1.0, -1.0], [0.5, 2.0], [-2.0, 0.25]], dtype=np.float32)
BIAS = np.array([0.5, -0.5], dtype=np.float32)


def _round_rows(model, xs):
    # `model` is the loaded TensorFlowModel: calling it runs the serving signature on a batch.
    return [[round(float(v), 4) for v in row] for row in model(np.stack(xs))]


class TestKerasContract(BackendContract):
    backend = "tensorflow"
    expected_format = "saved_model"

    def make_model(self):
        import keras

        model = keras.Sequential([keras.Input(shape=(3,), name="x"), keras.layers.Dense(2)])
        model.layers[0].set_weights([WEIGHTS, BIAS])
        return model

    def make_func(self):
        return _round_rows

    def sample_inputs(self):
        return [np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.0, 0.5])]

    def expected_outputs(self, inputs):
        return [[round(float(v), 4) for v in np.asarray(x) @ WEIGHTS + BIAS] for x in inputs]


class TestModuleWithoutFunctionContract(BackendContract):
    """func=None: the serving signature's single output row is the answer."""

    backend = "tensorflow"
    expected_format = "saved_model"

    def make_model(self):
        import tensorflow as tf

        class Affine(tf.Module):
            def __init__(self):
                super().__init__()
                self.w = tf.Variable([[2.0], [-1.0]])

            @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float64, name="x")])
            def __call__(self, x):
                return {"y": tf.matmul(x, tf.cast(self.w, tf.float64)) + 1.0}

        return Affine()

    def make_func(self):
        return None

    def sample_inputs(self):
        return [np.array([1.0, 2.0]), np.array([3.0, -1.0])]

    def expected_outputs(self, inputs):
        return [[1.0], [8.0]]
