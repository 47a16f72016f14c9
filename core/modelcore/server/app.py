"""The aiohttp application, built from a spec: routes, the model manager, watchers, lifecycle."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from modelcore import pipeline
from modelcore.assemble import assemble
from modelcore.errors import NotFound, SpecError
from modelcore.integrity import SIGNING_KEY_ENV, IntegrityPolicy, signing_key_from_env
from modelcore.plugins import ModelcorePluginManager, plugin_manager
from modelcore.runtime import ModelManager
from modelcore.runtime.handler import (
    HandlerLoader,
    ModelClient,
    construct_handler,
    load_handler_class,
)
from modelcore.runtime.reload import Reloader
from modelcore.server import openapi, security, v2
from modelcore.server.clipper import ClipperApi
from modelcore.server.errors import json_response
from modelcore.server.handlers import HandlerApi
from modelcore.server.metrics import Metrics
from modelcore.server.pipelines import PipelineApi
from modelcore.server.routes import Routes
from modelcore.server.security import Handler
from modelcore.server.timeouts import RequestTimeouts
from modelcore.spec import ApiSpec, LoadedSpec
from modelcore.store import ModelStore
from modelcore.validate import check_spec

log = logging.getLogger(__name__)

MANAGER = web.AppKey("manager", ModelManager)
SPEC = web.AppKey("spec", LoadedSpec)
STARTUP = web.AppKey("startup", asyncio.Task)
RELOADER = web.AppKey("reloader", Reloader)
HANDLERS = web.AppKey("handlers", list)
PLUGINS = web.AppKey("plugins", ModelcorePluginManager)
APIS = web.AppKey("apis", dict)
EXECUTORS = web.AppKey("executors", list)
TIMEOUTS = web.AppKey("timeouts", RequestTimeouts)


def create_app(
    loaded: LoadedSpec,
    *,
    pm: ModelcorePluginManager | None = None,
    store: ModelStore | None = None,
    check: bool = True,
    host: str | None = None,
) -> web.Application:
    """Build the server for ``loaded``; models start loading when the app starts.

    ``host`` is where it will listen (default: the spec's): management routes
    without an admin token exist only on loopback.
    """
    pm = pm or plugin_manager()
    spec = loaded.spec
    assembly = check_spec(loaded, pm, store) if check else assemble(loaded, store)
    key = signing_key_from_env()
    if spec.server.require_signed and key is None:
        raise SpecError(
            loaded.error(
                ("server", "require_signed"), f"true needs a signing key in {SIGNING_KEY_ENV}"
            )
        )
    metrics = Metrics()
    manager = ModelManager(
        assembly.store,
        pm,
        assembly.configs.values(),
        assembly.groups.values(),
        integrity=IntegrityPolicy(spec.server.verify_hashes, spec.server.require_signed, key),
        observer=metrics,
    )
    # No middleware: every route's handler is metered once, as it is added (routes.py).
    app = web.Application(client_max_size=spec.server.max_body_bytes)
    routes = Routes(app, metrics, lambda name: name in manager.slots)
    predict_token = security.token(spec.server.predict_token, security.PREDICT_ENV)
    admin_token = security.token(spec.server.admin_token, security.ADMIN_ENV)
    listening = host or spec.server.host
    management: Callable[[Handler], Handler] | None = None
    if admin_token is not None:
        management = functools.partial(security.guard, expected=admin_token, what="management")
    elif security.is_loopback(listening):
        management = _unguarded
    else:
        log.warning(
            "management routes are off: %s is not loopback and no %s is set",
            listening,
            security.ADMIN_ENV,
        )

    def protect(handler: Handler) -> Handler:
        return security.guard(handler, predict_token, "predict routes")

    app[MANAGER] = manager
    app[SPEC] = loaded
    app[PLUGINS] = pm
    app[RELOADER] = Reloader(manager, spec.poll_interval)
    app[HANDLERS] = []
    app[APIS] = {}
    app[EXECUTORS] = []
    timeouts = app[TIMEOUTS] = RequestTimeouts(spec.server.request_timeout_s)
    input_types = pm.input_types()
    query_ids = itertools.count()
    documented: dict[str, tuple[ApiSpec, bool]] = {}
    for api in spec.apis:
        models = assembly.apis[api.name]
        route = api.predict_route
        if api.pipeline is not None:
            executor = ThreadPoolExecutor(api.threads, thread_name_prefix=f"pipeline-{api.name}")
            app[EXECUTORS].append(executor)
            steps = pipeline.build(loaded, api.name, api.pipeline, manager, executor)
            runner = PipelineApi(api, steps, input_types[api.input_type], query_ids, timeouts)
            routes.post(route, protect(runner.handle))
            documented[route] = (api, False)
            continue
        if api.handler is not None:
            handler_api = HandlerApi(api)
            app[HANDLERS].append((handler_api, models))
            routes.post(route, protect(handler_api.post))
            routes.get(route, protect(handler_api.get))
            documented[route] = (api, False)
            continue
        clipper = ClipperApi(
            api,
            manager,
            input_types[api.input_type],
            query_ids,
            models,
            timeouts=timeouts,
        )
        app[APIS][api.name] = clipper
        if models.single is None:
            route = f"/{api.name}/{{model}}/predict"
        routes.post(route, protect(clipper.handle))
        documented[route] = (api, models.single is None)
    v2.add_routes(
        routes,
        manager,
        lambda: all(h.instance is not None for h, _ in app[HANDLERS]),
        protect=protect,
        management=management,
        timeouts=timeouts,
    )
    routes.get("/v2/apis/{api}", _api_stats)
    document = openapi.build(loaded, documented)
    routes.get("/openapi.json", functools.partial(_json_now, document))
    metrics.watch(manager, app[APIS])
    routes.get("/metrics", functools.partial(_metrics, metrics))
    routes.close()
    app.cleanup_ctx.append(_lifecycle)
    return app


def _unguarded(handler: Handler) -> Handler:
    return handler


async def _json_now(document: dict[str, object], _request: web.Request) -> web.Response:
    return json_response(document)


async def _metrics(metrics: Metrics, _request: web.Request) -> web.Response:
    return web.Response(
        body=metrics.render(),
        content_type="text/plain",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def _api_stats(request: web.Request) -> web.Response:
    clipper = request.app[APIS].get(request.match_info["api"])
    if clipper is None:
        raise NotFound(f"no API {request.match_info['api']!r} with a predict route")
    return json_response(clipper.stats())


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    # Load in the background: the server answers liveness at once, readiness when loaded.
    app[STARTUP] = asyncio.create_task(_startup(app))
    yield
    startup = app[STARTUP]
    if not startup.done():
        startup.cancel()
    app[TIMEOUTS].close()
    for clipper in app[APIS].values():
        clipper.close()
    await app[RELOADER].stop()
    await app[MANAGER].close()
    for handler_api, _models in app[HANDLERS]:
        await asyncio.to_thread(handler_api.executor.shutdown, True, cancel_futures=True)
    for executor in app[EXECUTORS]:
        await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)


async def _startup(app: web.Application) -> None:
    manager, loaded = app[MANAGER], app[SPEC]
    loop = asyncio.get_running_loop()
    # Handlers first: a handler's load_model is the loader of its API's models.
    for handler_api, models in app[HANDLERS]:
        api = handler_api.api
        client = ModelClient(manager, loop, models.names, models.group)
        handler_api.client = client
        try:
            cls = load_handler_class(loaded.resolve_handler(api.handler or ""))
            extra: dict[str, object] = {}
            for offered in app[PLUGINS].hook.modelcore_handler_arguments(model_client=client):
                extra.update(offered or {})
            instance = await asyncio.to_thread(construct_handler, cls, api.config, client, extra)
        except Exception as exc:
            handler_api.error = f"{type(exc).__name__}: {exc}"
            log.error("handler of API %s failed to start: %s", api.name, handler_api.error)
            continue
        load_model = getattr(instance, "load_model", None)
        if callable(load_model):
            loader = HandlerLoader(load_model)
            for name in models.names:
                manager.slots[name].config.loader = loader
            if models.group is not None:
                manager.groups[models.group].template.loader = loader
        handler_api.set_instance(instance)
    if loaded.spec.watch:
        app[RELOADER].start()
    await manager.start()
