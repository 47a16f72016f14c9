"""Small real ONNX models for tests and examples (imports onnx and numpy when imported)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Opset 17 / IR 8 load in every onnxruntime release of the last years.
OPSET = 17
IR_VERSION = 8


def affine_model(
    weights: Sequence[Sequence[float]] | np.ndarray,
    bias: Sequence[float] | np.ndarray,
    *,
    batch: str | int = "batch",
    dtype: Any = np.float32,
) -> onnx.ModelProto:
    """``y = x @ weights + bias`` as a MatMul + Add graph, input ``x``, output ``y``.

    ``batch`` is the first dimension of ``x`` and ``y``: a name makes it
    dynamic, an integer fixes it.
    """
    w = np.asarray(weights, dtype=dtype)
    b = np.asarray(bias, dtype=dtype)
    elem = helper.np_dtype_to_tensor_dtype(w.dtype)
    n_in, n_out = w.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "affine",
        [helper.make_tensor_value_info("x", elem, [batch, n_in])],
        [helper.make_tensor_value_info("y", elem, [batch, n_out])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelcore-onnx"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def two_input_model() -> onnx.ModelProto:
    """``s = a + b`` over two float inputs of shape ``[batch, 2]``: not servable without a function."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"])],
        "sum2",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 2]),
        ],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model
