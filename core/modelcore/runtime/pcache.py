"""The prediction cache: outputs by model, version (and its content) and input, LRU by bytes.

A key includes the version's fingerprint, so a new version, or a version
rewritten in place, never answers from entries of the one before.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

import numpy as np

from modelcore import _json


def input_key(value: Any) -> bytes | None:
    """A digest of one decoded input, or ``None`` when it cannot be keyed."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(value, np.ndarray):
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (bytes, bytearray)):
        digest.update(b"b")
        digest.update(value)
    elif isinstance(value, str):
        digest.update(b"s")
        digest.update(value.encode())
    else:
        try:
            digest.update(b"j")
            digest.update(_json.dumps(value))
        except TypeError:
            return None
    return digest.digest()


class PredictionCache:
    """An LRU map from (model, version, fingerprint, input) to the answer, within ``max_bytes``."""

    ENTRY_OVERHEAD = 200  # key tuple, dict slot, bookkeeping: measured order of magnitude

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._entries: OrderedDict[tuple[str, int, str, bytes], tuple[Any, int]] = OrderedDict()

    def get(self, key: tuple[str, int, str, bytes]) -> tuple[bool, Any]:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return False, None
        self._entries.move_to_end(key)
        self.hits += 1
        return True, entry[0]

    def put(self, key: tuple[str, int, str, bytes], output: Any) -> None:
        try:
            size = len(_json.dumps(output)) + len(key[3]) + self.ENTRY_OVERHEAD
        except TypeError:
            return
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._entries[key] = (output, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _key, (_out, freed) = self._entries.popitem(last=False)
            self.bytes -= freed
            self.evictions += 1

    def stats(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "entries": len(self._entries),
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "evictions": self.evictions,
        }
