"""TensorFlow test setup: quiet logs, a fresh plugin manager per test, tiny real models."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelcore.plugins import set_plugin_manager


class Models:
    """Tiny models with fixed weights, so expected outputs are plain numpy."""

    W1 = np.array([[1.0, -1.0], [0.5, 2.0], [-2.0, 0.25]], dtype=np.float32)
    B1 = np.array([0.5, -0.5], dtype=np.float32)
    W2 = -2 * W1
    B2 = B1 + 1

    @classmethod
    def dense(cls, weights: np.ndarray | None = None, bias: np.ndarray | None = None) -> Any:
        """A Keras 3 model, one Dense layer: input ``x`` of 3 floats -> ``output_0`` of 2."""
        import keras

        model = keras.Sequential([keras.Input(shape=(3,), name="x"), keras.layers.Dense(2)])
        model.layers[0].set_weights(
            [cls.W1 if weights is None else weights, cls.B1 if bias is None else bias]
        )
        return model

    @classmethod
    def dense_expected(
        cls, xs: list[Any], weights: np.ndarray | None = None, bias: np.ndarray | None = None
    ) -> list[list[float]]:
        w = cls.W1 if weights is None else weights
        b = cls.B1 if bias is None else bias
        return [(np.asarray(x, dtype=np.float32) @ w + b).tolist() for x in xs]

    @staticmethod
    def two_outputs() -> Any:
        """A tf.Module: ``__call__(x: (None, 2) float32) -> {"scaled": x * w, "total": sum}``."""
        import tensorflow as tf

        class Scale(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                self.w = tf.Variable([2.0, 3.0])

            @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
            def __call__(self, x):
                scaled = x * self.w
                return {"scaled": scaled, "total": tf.reduce_sum(scaled, axis=1)}

        return Scale()

    @staticmethod
    def two_inputs() -> Any:
        """A tf.Module with signature ``f(a: (None,) float32, b: (None,) int32) -> a * b``."""
        import tensorflow as tf

        class Mul(tf.Module):
            @tf.function(
                input_signature=[
                    tf.TensorSpec([None], tf.float32, name="a"),
                    tf.TensorSpec([None], tf.int32, name="b"),
                ]
            )
            def f(self, a, b):
                return {"product": a * tf.cast(b, tf.float32)}

        return Mul()

    @staticmethod
    def mixed() -> Any:
        """A tf.Module with signature ``f(a: (None, 2) float32, label: (None,) string)``.

        Returns ``{"total": row sums, "greeting": "hi " + label}``.
        """
        import tensorflow as tf

        class Mixed(tf.Module):
            @tf.function(
                input_signature=[
                    tf.TensorSpec([None, 2], tf.float32, name="a"),
                    tf.TensorSpec([None], tf.string, name="label"),
                ]
            )
            def f(self, a, label):
                return {"total": tf.reduce_sum(a, axis=1), "greeting": "hi " + label}

        return Mixed()

    @staticmethod
    def unbatched() -> Any:
        """A tf.Module whose signature has no batch dimension: ``(3,) float32 -> its norm``."""
        import tensorflow as tf

        class Norm(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([3], tf.float32, name="v")])
            def __call__(self, v):
                return {"norm": tf.norm(v)}

        return Norm()


@pytest.fixture(scope="session")
def models() -> type[Models]:
    return Models


@pytest.fixture(autouse=True)
def _fresh_plugin_manager():
    """Each test sees a freshly built process-wide plugin manager."""
    set_plugin_manager(None)
    yield
    set_plugin_manager(None)


@pytest.fixture(scope="session")
def exported_dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SavedModel folder exported once from :meth:`Models.dense` (signature x -> output_0)."""
    path = tmp_path_factory.mktemp("exported") / "dense"
    Models.dense().export(str(path), verbose=False)
    return path
