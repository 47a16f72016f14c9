"""The JSON codec: orjson when installed (the ``fast`` extra), else the standard library."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import numpy as np


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"an output of type {type(obj).__name__} cannot be encoded as JSON")


try:
    if os.environ.get("MODELCORE_JSON") == "json":  # to measure the difference
        raise ImportError("the standard library's json was asked for")
    import orjson

    _OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, default=_default, option=_OPTS)

    loads = orjson.loads
    JSONDecodeError: type[ValueError] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - exercised where orjson is absent

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, default=_default, separators=(",", ":"), allow_nan=False).encode()

    loads = json.loads  # type: ignore[assignment]
    JSONDecodeError = json.JSONDecodeError
