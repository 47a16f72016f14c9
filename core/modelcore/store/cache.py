"""The local disk cache for remote stores: downloaded versions, least recently used evicted first.

Each entry is one downloaded version folder, named by version and content
fingerprint, so a version rewritten in place is downloaded afresh and never
read half-old, half-new. Entries in use by a loaded model are pinned and never
evicted; the limit is a count of versions, a number of bytes, or both.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from modelcore.units import parse_size

__all__ = ["DiskCache", "parse_size", "tree_size"]

log = logging.getLogger(__name__)


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


class DiskCache:
    """A folder of downloaded versions with an LRU size limit (thread-safe)."""

    def __init__(self, root: Path, max_count: int | None = None, max_bytes: int | None = None):
        self.root = root
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._used: dict[Path, float] = {}
        self._sizes: dict[Path, int] = {}
        self._pins: dict[Path, int] = {}
        self.evictions = 0

    def entry(self, name: str, version: int, fingerprint: str) -> Path:
        return self.root / name / f"{version}-{fingerprint[:16]}"

    def lookup(self, path: Path, pin: bool = False) -> bool:
        """True (and marked as just used, and pinned if asked) when ``path`` is downloaded."""
        with self._lock:
            if path.is_dir():
                self._used[path] = time.monotonic()
                self._sizes.setdefault(path, tree_size(path))
                if pin:
                    self._pins[path] = self._pins.get(path, 0) + 1
                return True
            return False

    def added(self, path: Path, pin: bool = False) -> None:
        """Record a finished download (pinned if asked) and evict what no longer fits."""
        with self._lock:
            self._used[path] = time.monotonic()
            self._sizes[path] = tree_size(path)
            if pin:
                self._pins[path] = self._pins.get(path, 0) + 1
        self.evict(keep=path)

    def pin(self, path: Path) -> None:
        with self._lock:
            self._pins[path] = self._pins.get(path, 0) + 1

    def unpin(self, path: Path) -> None:
        with self._lock:
            left = self._pins.get(path, 0) - 1
            if left > 0:
                self._pins[path] = left
            else:
                self._pins.pop(path, None)
        self.evict()

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least recently used, unpinned entries (never ``keep``) until the limits hold."""
        removed = []
        with self._lock:
            while self._over():
                candidates = [p for p in self._used if p not in self._pins and p != keep]
                if not candidates:
                    break
                victim = min(candidates, key=self._used.__getitem__)
                self._used.pop(victim)
                self._sizes.pop(victim, None)
                removed.append(victim)
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
            self.evictions += 1
            log.info("disk cache: evicted %s", path)
        return removed

    def _over(self) -> bool:
        if self.max_count is not None and len(self._used) > self.max_count:
            return True
        return self.max_bytes is not None and sum(self._sizes.values()) > self.max_bytes

    def entries(self) -> list[Path]:
        with self._lock:
            return sorted(self._used, key=self._used.__getitem__)
