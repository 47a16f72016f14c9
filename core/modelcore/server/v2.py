"""Health and model status routes of the Open Inference Protocol (KServe V2)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from modelcore.errors import BadRequest
from modelcore.runtime import ModelManager
from modelcore.server.errors import error_response, json_response


def add_routes(
    app: web.Application, manager: ModelManager, others_ready: Callable[[], bool] = lambda: True
) -> None:
    async def live(_request: web.Request) -> web.Response:
        return json_response({"live": True})

    async def ready(_request: web.Request) -> web.Response:
        if manager.ready() and others_ready():
            return json_response({"ready": True})
        return error_response("not every model is loaded yet", 503, "loading")

    async def model_status(request: web.Request) -> web.Response:
        return json_response(manager.model_status(request.match_info["name"]))

    async def version_status(request: web.Request) -> web.Response:
        name, raw = request.match_info["name"], request.match_info["version"]
        if not raw.isdigit():
            raise BadRequest(f"version {raw!r} is not a positive integer")
        status = manager.model_status(name)
        for entry in status["versions"]:
            if entry["version"] == int(raw):
                return json_response({"name": name, **entry})
        return error_response(f"model {name!r} has no version {raw}", 404)

    async def repository_index(_request: web.Request) -> web.Response:
        """The repository extension's index: one entry per known model version."""
        entries = []
        for name in sorted(manager.slots):
            status = manager.model_status(name)
            for v in status["versions"]:
                entries.append(
                    {
                        "name": name,
                        "version": str(v["version"]),
                        "state": v["state"].upper(),
                        "reason": v["error"] or "",
                        "serving": status["latest"] == v["version"],
                    }
                )
        return json_response(entries)

    app.router.add_post("/v2/repository/index", repository_index)
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2/models/{name}", model_status)
    app.router.add_get("/v2/models/{name}/versions/{version}", version_status)
