"""One loaded model version, and the states a version goes through."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelcore.errors import ModelcoreError, PredictionError
from modelcore.runtime.observer import NULL_OBSERVER, Observer

if TYPE_CHECKING:
    from modelcore.manifest import Manifest
    from modelcore.plugins import Backend

log = logging.getLogger(__name__)


INLINE_STRIKES = 10
"""Strikes within :data:`INLINE_WINDOW` inline calls that move a version to threads for good."""
INLINE_WINDOW = 1000
INLINE_SEVERE = 10
"""A call over this many budgets counts :data:`INLINE_SEVERE_STRIKES` strikes, not one."""
INLINE_SEVERE_STRIKES = 5

AUTO_INLINE_UNDER = 0.00005
"""With ``isolation`` unset, a version whose calls take less than this (seconds) moves onto the
event loop: under a third of the 0.15-0.2 ms a hand-off to a thread and back adds to a request
on a small VM, so a model that gains from running beside the loop stays in threads."""
AUTO_INLINE_CALLS = 200
"""Calls in a row (in threads) that must prove a version fast before it moves onto the loop."""
AUTO_INLINE_SLACK = 10
"""Calls of such a run that may take longer (the OS or the GIL delayed them), never over budget."""


class VersionState(str, enum.Enum):
    AVAILABLE = "available"  # in the store, not loaded
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    UNLOADED = "unloaded"


@dataclass
class VersionStatus:
    """What ``GET /v2/models/<name>`` reports for one version."""

    version: int
    state: VersionState = VersionState.AVAILABLE
    error: str | None = None
    since: float = 0.0
    load_seconds: float | None = None

    def set(self, state: VersionState, error: str | None = None) -> None:
        self.state = state
        self.error = error
        self.since = time.time()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "state": self.state.value,
            "error": self.error,
            "since": self.since,
            "load_seconds": self.load_seconds,
        }


class LoadedVersion:
    """A live model version: the backend, the object it loaded, and who is using it.

    ``inflight`` and ``retired`` are touched only on the event loop; the
    version is unloaded once it is retired and its last request has finished.
    """

    __slots__ = (
        "__weakref__",  # the server caches per-version facts in weak maps
        "auto_calls",
        "auto_inline",
        "auto_slow",
        "backend",
        "batcher",
        "fingerprint",
        "inflight",
        "inline",
        "inline_budget",
        "inline_calls",
        "inline_strikes",
        "keep_status",
        "local_dir",
        "manifest",
        "model",
        "name",
        "observer",
        "retired",
        "slot",
        "unloaded",
        "version",
    )

    def __init__(
        self,
        name: str,
        version: int,
        backend: Backend,
        model: Any,
        manifest: Manifest | None,
        fingerprint: str = "",
        local_dir: Path | None = None,
    ):
        self.name = name
        self.version = version
        self.backend = backend
        self.model = model
        self.manifest = manifest
        self.fingerprint = fingerprint
        self.local_dir = local_dir
        self.inflight = 0
        self.retired = False
        self.unloaded = False
        self.keep_status = False
        self.observer: Observer = NULL_OBSERVER
        self.batcher: Any = None
        """The version's batch queue, made on its first request when batching is on."""
        self.slot: Any = None
        """The manager's slot this version belongs to (opaque here)."""
        self.inline = False
        """Predictions run on the event loop (``isolation: inline``) until one is too slow."""
        self.inline_budget = 0.001
        """Seconds an inline call may take without counting as a strike."""
        self.inline_calls = 0
        self.inline_strikes = 0
        self.auto_inline = False
        """``isolation`` unset: calls in threads are watched, and a fast version moves inline."""
        self.auto_calls = 0
        self.auto_slow = 0

    def __repr__(self) -> str:
        return f"<LoadedVersion {self.name} v{self.version} ({self.backend.name})>"

    def predict(self, inputs: list[Any], inline: bool = False) -> list[Any]:
        """Run the backend on a batch and check the list-in/list-out contract (blocking).

        ``inline``: this call runs on the event loop, and counts for :meth:`run_inline`'s
        rule (one clock for both the rule and the metrics).
        """
        started = time.perf_counter()
        try:
            outputs = self.backend.predict(self.model, inputs)
        except ModelcoreError:
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit from a model must not stop the server
            log.warning("%s v%s raised %s: %s", self.name, self.version, type(exc).__name__, exc)
            raise PredictionError(
                f"model {self.name} v{self.version} raised {type(exc).__name__}: {exc}",
                cause=type(exc).__name__,
            ) from exc
        finally:
            elapsed = time.perf_counter() - started
            if inline:
                self._ran_inline(elapsed)
            elif self.auto_inline:
                self._ran_in_thread(elapsed)
        self.observer.predicted(self.name, self.version, len(inputs), elapsed)
        return check_outputs(self.name, self.version, inputs, outputs)

    def run_inline(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the event loop; a version that is often too slow moves to threads.

        Inline is for models that answer faster than a hand-off to a thread and
        back (about 0.2 ms on a small VM). A call over the budget is a strike, a
        call over :data:`INLINE_SEVERE` budgets five; :data:`INLINE_STRIKES`
        strikes within :data:`INLINE_WINDOW` calls move the version to threads
        for good. The clock is the wall clock, so the OS preempting the server
        during a call, or a garbage collection, makes a tiny model's call slow
        now and then: measured on a busy 2-core VM, up to 0.2% of the calls of
        a 3 us model went over 1 ms, which this rule forgives (a rule of three
        strikes did not). A model that turns slow stalls the loop two to ten
        times, not on every request.
        """
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self._ran_inline(time.perf_counter() - started)

    def _ran_inline(self, elapsed: float) -> None:
        self.inline_calls += 1
        if elapsed > self.inline_budget and self.inline:
            severe = elapsed > INLINE_SEVERE * self.inline_budget
            self.inline_strikes += INLINE_SEVERE_STRIKES if severe else 1
            log.debug(
                "model %s v%s took %.2f ms on the event loop",
                self.name,
                self.version,
                elapsed * 1000.0,
            )
            if self.inline_strikes >= INLINE_STRIKES:
                self.inline = self.auto_inline = False
                log.warning(
                    "model %s v%s took %.2f ms on the event loop, %d strikes over the "
                    "inline budget of %.2f ms in %d calls; its predictions run in threads "
                    "from now on",
                    self.name,
                    self.version,
                    elapsed * 1000.0,
                    self.inline_strikes,
                    self.inline_budget * 1000.0,
                    self.inline_calls,
                )
        if self.inline_calls >= INLINE_WINDOW:
            self.inline_calls = self.inline_strikes = 0

    def _ran_in_thread(self, elapsed: float) -> None:
        """Watch a call in a thread (``isolation`` unset): a run of fast ones moves the version
        onto the event loop, where :meth:`_ran_inline`'s rule moves it back for good if it slows.

        Called from predict threads: the counters may miss a call when two threads finish at
        once, which only makes the run a little longer.
        """
        if elapsed > AUTO_INLINE_UNDER:
            self.auto_slow += 1
            if elapsed > self.inline_budget or self.auto_slow > AUTO_INLINE_SLACK:
                self.auto_calls = self.auto_slow = 0  # not this run
                return
        self.auto_calls += 1
        if self.auto_calls >= AUTO_INLINE_CALLS and self.auto_inline and not self.inline:
            self.inline_calls = self.inline_strikes = 0
            self.inline = True
            log.info(
                "model %s v%s answers in under %.3f ms; it predicts on the event loop from now "
                "on (isolation: thread keeps a model in threads)",
                self.name,
                self.version,
                AUTO_INLINE_UNDER * 1000.0,
            )

    def unload(self) -> None:
        if self.unloaded:
            return
        self.unloaded = True
        try:
            self.backend.unload(self.model)
        except Exception:
            log.exception("unloading %s v%s failed", self.name, self.version)
        self.model = None


def check_outputs(name: str, version: int, inputs: Sequence[Any], outputs: Any) -> list[Any]:
    if isinstance(outputs, np.ndarray):
        outputs = list(outputs) if outputs.ndim else [outputs]
    elif isinstance(outputs, tuple):
        outputs = list(outputs)
    if not isinstance(outputs, list):
        raise PredictionError(
            f"model {name} v{version} returned {type(outputs).__name__}; "
            "a predict function must return a list as long as its inputs"
        )
    if len(outputs) != len(inputs):
        raise PredictionError(
            f"model {name} v{version} returned {len(outputs)} outputs for {len(inputs)} inputs; "
            "a predict function must return one output per input"
        )
    return outputs
