from __future__ import annotations

import numpy as np
import pytest

from modelcore.default_plugins.input_types import INPUT_TYPES
from modelcore.errors import BadRequest

T = {t.name: t.decode for t in INPUT_TYPES}


def test_numeric_types_become_numpy_arrays() -> None:
    out = T["doubles"]([1, 2.5])
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.5]
    assert T["floats"]([[1, 2], [3, 4]]).dtype == np.float32
    assert T["integers"]([1, -2]).dtype == np.int64


@pytest.mark.parametrize(
    "name,value,needle",
    [
        ("doubles", "1.0", "got a string"),
        ("doubles", 1.0, "got a number"),
        ("doubles", ["1"], "found a string '1'"),
        ("doubles", [True], "found a boolean"),
        ("doubles", [None], "found null"),
        ("doubles", [[1, 2], [3]], "not a rectangular array"),
        ("doubles", [{"a": 1}], "found an object"),
        ("integers", [1.5], "found a number 1.5"),
        ("integers", [10**30], "not a rectangular array of integers"),
        ("bytes", "not base64!", "not valid base64"),
        ("bytes", 12, "base64-encoded string"),
        ("strings", ["a"], "expected a string"),
    ],
)
def test_bad_inputs_are_clear_bad_requests(name, value, needle) -> None:
    with pytest.raises(BadRequest) as info:
        T[name](value)
    assert needle in info.value.message


def test_deep_nesting_is_refused() -> None:
    deep: list = [1.0]
    for _ in range(40):
        deep = [deep]
    with pytest.raises(BadRequest, match="nested deeper"):
        T["doubles"](deep)


def test_bytes_and_strings() -> None:
    assert T["bytes"]("aGVsbG8=") == b"hello"
    assert T["strings"]("héllo") == "héllo"


def test_empty_numeric_inputs_are_refused() -> None:
    with pytest.raises(BadRequest, match="non-empty"):
        T["doubles"]([])
