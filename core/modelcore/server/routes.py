"""Where the server's routes are added: each handler is wrapped once, when it is added.

The wrapper answers failures as JSON and counts and times the request
(:meth:`Metrics.metered`): the work of an aiohttp middleware, which would cost
every request two coroutines more and a lookup of its route's labels. The last
route catches what no other route matched and answers 404 or 405 in the same
JSON shape.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import hdrs, web

from modelcore.server.metrics import Metrics
from modelcore.server.security import Handler

_MODEL_PARAMS = ("{name}", "{model}")


class Routes:
    """``app``'s router, adding metered handlers; :meth:`close` adds the catch-all route."""

    def __init__(
        self, app: web.Application, metrics: Metrics, known: Callable[[str], bool]
    ) -> None:
        self.router = app.router
        self.metrics = metrics
        self.known = known

    def _metered(self, path: str, handler: Handler) -> tuple[web.Resource, Handler]:
        resource = self.router.add_resource(path)
        names_model = any(p in resource.canonical for p in _MODEL_PARAMS)
        known = self.known if names_model else None
        return resource, self.metrics.metered(handler, resource.canonical, known)

    def get(self, path: str, handler: Handler) -> None:
        resource, metered = self._metered(path, handler)
        resource.add_route(hdrs.METH_HEAD, metered)
        resource.add_route(hdrs.METH_GET, metered)

    def post(self, path: str, handler: Handler) -> None:
        resource, metered = self._metered(path, handler)
        resource.add_route(hdrs.METH_POST, metered)

    def close(self) -> None:
        """Add the route that answers every request no other route matched."""
        resources = list(self.router.resources())

        async def unmatched(request: web.Request) -> web.StreamResponse:
            allowed: set[str] = set()
            for resource in resources:
                _match, methods = await resource.resolve(request)
                allowed |= methods
            if allowed:
                raise web.HTTPMethodNotAllowed(request.method, allowed)
            raise web.HTTPNotFound()

        self.router.add_route(
            hdrs.METH_ANY, "/{path:.*}", self.metrics.metered(unmatched, "unmatched")
        )
