"""One error hierarchy. Each error carries the HTTP status it answers with.

The message of a :class:`ModelcoreError` is shown to users as it is: by the
server's error layer (every route) as ``{"error": message, "cause": cause}`` and by the
CLI as one line with a non-zero exit.
"""

from __future__ import annotations


class ModelcoreError(Exception):
    """Base of every error modelcore raises on purpose."""

    status: int = 500
    headers: dict[str, str] | None = None
    """HTTP headers to answer with (``Retry-After``, ``WWW-Authenticate``)."""

    def __init__(
        self,
        message: str,
        *,
        cause: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.cause = cause
        if status is not None:
            self.status = status
        if headers is not None:
            self.headers = headers

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "cause": self.cause}


class BadRequest(ModelcoreError):
    """The request is malformed or its input does not match the API's input type."""

    status = 400


class NotFound(ModelcoreError):
    """An API, model or version that does not exist."""

    status = 404


class Conflict(ModelcoreError):
    """A version that exists already (versions are immutable)."""

    status = 409


class ModelUnavailable(ModelcoreError):
    """The model exists but has no version that can answer now."""

    status = 503


class Overloaded(ModelcoreError):
    """The model's queue is full; the client should retry later."""

    status = 503
    headers = {"Retry-After": "1"}


class GatewayTimeout(ModelcoreError):
    """The prediction did not finish within the server's request timeout."""

    status = 504


class PredictionError(ModelcoreError):
    """The model raised, or broke the list-in/list-out contract."""

    status = 500


class SpecError(ModelcoreError):
    """A spec file is invalid; the message names file, line and field."""

    status = 400


class PluginError(ModelcoreError):
    """A backend is missing, broken, or refused an object."""

    status = 500


class StoreError(ModelcoreError):
    """The store is unreadable, or a version in it is malformed."""

    status = 500


class IncompatibleArtifact(StoreError):
    """An artifact was written by a Python or library version that cannot read it here."""


class IntegrityError(StoreError):
    """A version's files differ from its manifest, or its manifest lacks a valid signature."""

    status = 503


class LoadError(ModelcoreError):
    """A model version failed to load; the version that was serving stays."""

    status = 503
