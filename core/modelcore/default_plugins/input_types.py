"""The request input types Clipper defined: integers, floats, doubles, bytes, strings.

Numeric inputs arrive as (possibly nested, rectangular) JSON arrays and reach
the model as numpy arrays; ``bytes`` arrive base64-encoded; ``strings`` as is.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from modelcore.errors import BadRequest
from modelcore.hookspecs import hookimpl
from modelcore.types import InputType

_MAX_DEPTH = 32


_NUMBERS = frozenset({int, float})
_INTEGERS = frozenset({int})


def _check_numbers(value: Any, integral: bool, what: str, depth: int = 0) -> None:
    if type(value) is not list:
        raise BadRequest(f"expected a JSON array of {what}, got {_json_type(value)}")
    if depth > _MAX_DEPTH:
        raise BadRequest(f"input nested deeper than {_MAX_DEPTH} levels")
    allowed = _INTEGERS if integral else _NUMBERS
    if allowed.issuperset(map(type, value)):  # a flat array of numbers: one pass in C
        return
    for item in value:
        t = type(item)
        if t in allowed:
            continue
        if t is list:
            _check_numbers(item, integral, what, depth + 1)
            continue
        raise BadRequest(
            f"expected a JSON array of {what}, found {_json_type(item)} {_short(item)}"
        )


def _numeric(name: str, dtype: type[np.generic], integral: bool) -> InputType:
    what = "integers" if integral else "numbers"

    def decode(value: Any) -> np.ndarray:
        _check_numbers(value, integral, what)
        if not value:
            raise BadRequest(f"expected a non-empty JSON array of {what}")
        try:
            return np.array(value, dtype=dtype)
        except (ValueError, OverflowError) as exc:
            raise BadRequest(f"input is not a rectangular array of {name}: {exc}") from None

    return InputType(
        name=name,
        decode=decode,
        description=f"a JSON array of {what}, given to the model as numpy {np.dtype(dtype).name}",
    )


def _decode_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise BadRequest(f"expected a base64-encoded string, got {_json_type(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"input is not valid base64: {exc}") from None


def _decode_string(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"expected a string, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


INPUT_TYPES = [
    _numeric("integers", np.int64, integral=True),
    _numeric("floats", np.float32, integral=False),
    _numeric("doubles", np.float64, integral=False),
    InputType("bytes", _decode_bytes, "a base64-encoded string, given to the model as bytes"),
    InputType("strings", _decode_string, "a JSON string"),
]


@hookimpl
def modelcore_input_types() -> list[InputType]:
    return INPUT_TYPES
