"""The one error middleware: every failure becomes JSON ``{"error": ..., "cause": ...}``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from modelcore import _json
from modelcore.errors import ModelcoreError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_json.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def error_response(
    message: str, status: int, cause: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response({"error": message, "cause": cause}, status=status, headers=headers)


async def handle_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Call ``handler``; turn every failure into a JSON answer with its status."""
    try:
        return await handler(request)
    except ModelcoreError as exc:
        if exc.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.path, exc.status, exc.message)
        return json_response(exc.to_json(), status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 404:
            message = f"no route {request.method} {request.path}"
        return error_response(message or exc.reason, exc.status, exc.reason, headers)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response("internal server error", 500, type(exc).__name__)
