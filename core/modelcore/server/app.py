"""The aiohttp application, built from a spec: routes, the model manager, its lifecycle."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from modelcore.plugins import ModelcorePluginManager, plugin_manager
from modelcore.runtime import ModelManager
from modelcore.server import v2
from modelcore.server.clipper import ClipperApi
from modelcore.server.errors import error_middleware
from modelcore.spec import LoadedSpec
from modelcore.store import ModelStore
from modelcore.validate import check_spec, model_configs

log = logging.getLogger(__name__)

MANAGER = web.AppKey("manager", ModelManager)
SPEC = web.AppKey("spec", LoadedSpec)
STARTUP = web.AppKey("startup", asyncio.Task)


def create_app(
    loaded: LoadedSpec,
    *,
    pm: ModelcorePluginManager | None = None,
    store: ModelStore | None = None,
    check: bool = True,
) -> web.Application:
    """Build the server for ``loaded``; models start loading when the app starts."""
    pm = pm or plugin_manager()
    spec = loaded.spec
    store = store or ModelStore(loaded.store_url, spec.storage_options)
    if check:
        check_spec(loaded, pm, store)
    manager = ModelManager(store, pm, model_configs(loaded))
    app = web.Application(
        client_max_size=spec.server.max_body_bytes, middlewares=[error_middleware]
    )
    app[MANAGER] = manager
    app[SPEC] = loaded
    input_types = pm.input_types()
    query_ids = itertools.count()
    for api in spec.apis:
        clipper = ClipperApi(api, manager, input_types[api.input_type], query_ids)
        app.router.add_post(api.predict_route, clipper.handle)
    v2.add_routes(app, manager)
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    manager = app[MANAGER]
    # Load in the background: the server answers liveness at once, readiness when loaded.
    app[STARTUP] = asyncio.create_task(manager.start())
    yield
    startup = app[STARTUP]
    if not startup.done():
        startup.cancel()
    await manager.close()
