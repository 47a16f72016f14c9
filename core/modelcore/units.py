"""Sizes in specs: a count of models, or bytes with a unit."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(value: int | str) -> tuple[int | None, int | None]:
    """``5`` means five versions; ``"500MB"`` means bytes. Returns (count, bytes)."""
    if isinstance(value, bool):
        raise ValueError("a cache size is a count of models or a size such as '500MB'")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a cache size must be at least 1")
        return value, None
    match = _SIZE.match(str(value))
    if not match or not match.group(2):
        raise ValueError(f"{value!r} is not a size such as '500MB' or '2GiB'")
    return None, int(float(match.group(1)) * _UNITS[match.group(2).lower()])
