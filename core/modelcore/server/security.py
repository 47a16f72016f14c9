"""Bearer tokens for management and predict routes, compared in constant time and never logged.

Management routes (anything that changes state) need the admin token. With no
admin token configured they exist only on a server that listens on loopback.
Predict routes need the predict token when one is configured.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from modelcore.errors import ModelcoreError

ADMIN_ENV = "MODELCORE_ADMIN_TOKEN"
PREDICT_ENV = "MODELCORE_PREDICT_TOKEN"


class Unauthorized(ModelcoreError):
    """A missing or wrong bearer token (the token itself never appears in any message)."""

    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


def token(configured: str | None, env: str) -> str | None:
    value = os.environ.get(env) or configured
    return value or None


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bearer(request: web.Request, expected: str, what: str) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized(f"{what} needs a bearer token (Authorization: Bearer ...)")
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthorized(f"the bearer token is not valid for {what}")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guard(handler: Handler, expected: str | None, what: str) -> Handler:
    """``handler``, answering 401 unless the request carries ``expected`` (when there is one)."""
    if expected is None:
        return handler

    async def guarded(request: web.Request) -> web.StreamResponse:
        check_bearer(request, expected, what)
        return await handler(request)

    guarded.__name__ = getattr(handler, "__name__", "guarded")
    return guarded
