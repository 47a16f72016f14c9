"""What the runtime reports as it works, for whoever keeps metrics (the server's /metrics).

The runtime calls these methods; it never imports the server. The default
observer ignores everything, so a manager without metrics pays nothing.
"""

from __future__ import annotations


class Observer:
    """Runtime events; subclass and override what you record."""

    def loaded(self, model: str, version: int, seconds: float) -> None:
        """A version finished loading (and warming up)."""

    def load_failed(self, model: str, version: int) -> None:
        """A version failed to load; the serving version stayed."""

    def swapped(self, model: str, version: int) -> None:
        """``version`` now answers ``latest`` in place of another."""

    def unloaded(self, model: str, version: int) -> None:
        """A version's memory was released."""

    def predicted(self, model: str, version: int, size: int, seconds: float) -> None:
        """The backend answered a batch of ``size`` inputs in ``seconds``."""

    def queued(self, model: str, seconds: float) -> None:
        """A request waited ``seconds`` in a batch queue before its batch started."""


NULL_OBSERVER = Observer()
