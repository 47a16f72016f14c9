"""Values in and out of a signature: casting to the declared dtypes, and back to JSON-ready lists.

TensorFlow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from modelcore.errors import BadRequest


class PayloadError(BadRequest, ValueError):
    """An input that does not fit the signature (a missing name, a wrong shape or dtype).

    A :class:`ValueError` for handler code, and a 400 answer when it reaches the server.
    """


def to_tensor(value: Any, spec: Any, name: str) -> Any:
    """Turn ``value`` into a tensor of ``spec``'s dtype, checking it fits ``spec``'s shape."""
    import tensorflow as tf

    if isinstance(value, tf.Tensor):
        tensor = value if value.dtype == spec.dtype else tf.cast(value, spec.dtype)
    else:
        # tf.string tensors are built from object arrays of str/bytes; everything else is cast
        # by numpy, which also turns nested JSON lists into one array.
        np_dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
        try:
            array = np.asarray(value, dtype=np_dtype)
        except (TypeError, ValueError) as exc:
            raise PayloadError(
                f"input {name!r}: cannot convert the value to {spec.dtype.name}", cause=str(exc)
            ) from exc
        tensor = tf.constant(array, dtype=spec.dtype)
    if not spec.shape.is_compatible_with(tensor.shape):
        raise PayloadError(
            f"input {name!r}: shape {shape_text(tensor.shape)} does not fit the signature's "
            f"shape {shape_text(spec.shape)}"
        )
    return tensor


def shape_text(shape: Any) -> str:
    """``(None, 3)`` for a TensorShape or tuple; ``<unknown rank>`` when the rank is unknown."""
    dims = shape_list(shape)
    if dims is None:
        return "<unknown rank>"
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def shape_list(shape: Any) -> list[int | None] | None:
    """A TensorShape as a list with ``None`` for unknown dimensions (``None`` for unknown rank)."""
    import tensorflow as tf

    shape = tf.TensorShape(shape)
    return None if shape.rank is None else shape.as_list()


def jsonable(value: Any) -> Any:
    """A numpy array or scalar as nested Python lists and numbers; tf.string bytes become str."""
    array = np.asarray(value)
    if array.dtype.kind in "OS":  # tf.string outputs come back as bytes objects
        return _decode(array.tolist())
    if array.dtype.kind not in "biufcU":  # bfloat16 and other extension dtypes
        array = array.astype(np.float64)
    return array.tolist()


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            # Binary outputs (encoded images, serialized protos) travel as base64 text.
            return base64.b64encode(value).decode("ascii")
    return value
