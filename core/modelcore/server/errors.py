"""Errors as JSON: every failure becomes ``{"error": ..., "cause": ...}`` with its status.

Every route's handler is wrapped once (``Metrics.metered``, ``routes.py``) to call
:func:`error_answer` on a failure: the one error layer, without a middleware.
"""

from __future__ import annotations

import logging

from aiohttp import web

from modelcore import _json
from modelcore.errors import ModelcoreError

log = logging.getLogger(__name__)

_JSON = {"Content-Type": "application/json"}
"""Set once: aiohttp copies given headers, cheaper than working out ``content_type`` per answer."""


def json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    if headers:
        headers = {**headers, "Content-Type": "application/json"}
    return web.Response(body=_json.dumps(data), status=status, headers=headers or _JSON)


def error_response(
    message: str, status: int, cause: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response({"error": message, "cause": cause}, status=status, headers=headers)


def error_answer(request: web.Request, exc: Exception) -> web.Response:
    """The JSON answer for a handler's failure; re-raises what is not an error (redirects)."""
    if isinstance(exc, ModelcoreError):
        if exc.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.path, exc.status, exc.message)
        return json_response(exc.to_json(), status=exc.status, headers=exc.headers)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 404:
            message = f"no route {request.method} {request.path}"
        return error_response(message or exc.reason, exc.status, exc.reason, headers)
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return error_response("internal server error", 500, type(exc).__name__)
