"""Routes of a Python handler API (Cortex): ``POST /<api>`` calls ``handle_post(payload)``.

The payload is the parsed JSON body for ``application/json``, text for
``text/*``, bytes otherwise. The handler's answer is sent as JSON, or as
``application/octet-stream`` when it is bytes. Handler methods run in the
API's thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from modelcore import _json
from modelcore.errors import BadRequest, ModelcoreError, ModelUnavailable, PredictionError
from modelcore.runtime.handler import ModelClient
from modelcore.server.errors import json_response
from modelcore.spec import ApiSpec

log = logging.getLogger(__name__)


class HandlerApi:
    """One handler API; its instance is set once the handler has been constructed."""

    def __init__(self, api: ApiSpec, client: ModelClient | None = None):
        self.api = api
        self.client = client
        self.instance: Any = None
        self.error: str | None = None
        self.executor = ThreadPoolExecutor(
            max_workers=api.threads, thread_name_prefix=f"handler-{api.name}"
        )
        self._post_params: set[str] = set()
        self._get_params: set[str] = set()

    def set_instance(self, instance: Any) -> None:
        self.instance = instance
        self._post_params = _params(getattr(instance, "handle_post", None))
        self._get_params = _params(getattr(instance, "handle_get", None))

    async def post(self, request: web.Request) -> web.StreamResponse:
        method = self._method("handle_post")
        kwargs = self._extras(request, self._post_params)
        return await self._call(method, await _payload(request), **kwargs)

    async def get(self, request: web.Request) -> web.StreamResponse:
        method = self._method("handle_get")
        return await self._call(method, **self._extras(request, self._get_params))

    def _method(self, name: str) -> Any:
        if self.instance is None:
            raise ModelUnavailable(
                f"API {self.api.name!r} is not ready", cause=self.error or "starting"
            )
        method = getattr(self.instance, name, None)
        if method is None:
            raise web.HTTPMethodNotAllowed(
                "GET" if name == "handle_get" else "POST",
                [
                    m
                    for m, n in (("POST", "handle_post"), ("GET", "handle_get"))
                    if hasattr(self.instance, n)
                ],
            )
        return method

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        call = self.client.run_in_scope if self.client is not None else _direct
        try:
            result = await asyncio.shield(
                loop.run_in_executor(self.executor, lambda: call(method, *args, **kwargs))
            )
        except ModelcoreError:
            raise
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise
        except BaseException as exc:  # a handler's sys.exit() must not stop the server
            log.warning("handler %s raised %s: %s", self.api.name, type(exc).__name__, exc)
            raise PredictionError(
                f"handler {self.api.name} raised {type(exc).__name__}: {exc}",
                cause=type(exc).__name__,
            ) from exc
        return _response(result)

    def _extras(self, request: web.Request, wanted: set[str]) -> dict[str, Any]:
        extras: dict[str, Any] = {}
        if "query_params" in wanted:
            extras["query_params"] = dict(request.query)
        if "headers" in wanted:
            extras["headers"] = dict(request.headers)
        return extras


def _direct(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _params(method: Any) -> set[str]:
    if method is None:
        return set()
    return set(inspect.signature(method).parameters)


async def _payload(request: web.Request) -> Any:
    body = await request.read()
    ctype = request.content_type
    if ctype == "application/json" or (
        ctype == "application/octet-stream" and body[:1] in (b"{", b"[")
    ):
        if not body:
            return None
        try:
            return _json.loads(body)
        except (_json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise BadRequest(f"malformed JSON: {exc}") from None
    if ctype.startswith("text/"):
        try:
            return body.decode(request.charset or "utf-8")
        except (UnicodeDecodeError, LookupError) as exc:
            raise BadRequest(f"the body is not valid text: {exc}") from None
    return body


def _response(result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, (bytes, bytearray, memoryview)):
        return web.Response(body=bytes(result), content_type="application/octet-stream")
    try:
        return json_response(result)
    except TypeError as exc:
        raise PredictionError(f"the handler's answer cannot be sent as JSON: {exc}") from None
