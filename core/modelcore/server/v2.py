"""The Open Inference Protocol (KServe V2) over REST: health, metadata, readiness, infer.

Triton's and KServe's clients (``tritonclient.http``) work unchanged, with
binary tensor data on or off. Every model the server serves is addressable,
whichever API of the spec names it. Errors are ``{"error": ...}`` with the
protocol's status codes.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import web

import modelcore
from modelcore.errors import BadRequest, ModelUnavailable, NotFound
from modelcore.runtime import LoadedVersion, ModelManager
from modelcore.server import oip
from modelcore.server.errors import error_response, json_response
from modelcore.server.routes import Routes
from modelcore.server.security import Handler
from modelcore.server.timeouts import RequestTimeouts
from modelcore.store.layout import parse_version

EXTENSIONS = ["model_repository", "binary_tensor_data", "classification_free"]


def add_routes(
    routes: Routes,
    manager: ModelManager,
    others_ready: Callable[[], bool] = lambda: True,
    *,
    protect: Callable[[Handler], Handler] = lambda h: h,
    management: Callable[[Handler], Handler] | None = None,
    timeouts: RequestTimeouts | None = None,
) -> None:
    """Register the protocol's routes; ``protect`` guards infer, ``management`` load/unload.

    With ``management`` None the repository's load and unload routes do not exist.
    """
    waits = timeouts or RequestTimeouts(60.0)

    async def server_metadata(_request: web.Request) -> web.Response:
        return json_response(
            {"name": "modelcore", "version": modelcore.__version__, "extensions": EXTENSIONS}
        )

    async def live(_request: web.Request) -> web.Response:
        return json_response({"live": True})

    async def ready(_request: web.Request) -> web.Response:
        if manager.ready() and others_ready():
            return json_response({"ready": True})
        return error_response("not every model is loaded yet", 503, "loading")

    async def metadata(request: web.Request) -> web.Response:
        name, version = _target(request)
        return json_response(await model_metadata(manager, name, version))

    async def model_ready(request: web.Request) -> web.Response:
        name, version = _target(request)
        slot = manager.slots.get(name)
        if slot is None:
            raise NotFound(f"model {name!r} is not served here")
        lv = slot.copy_of(version)
        if lv is None:
            return error_response(f"model {name!r} is not ready", 400, slot.error)
        return json_response({"name": name, "version": str(lv.version), "ready": True})

    async def infer(request: web.Request) -> web.Response:
        name, version = _target(request)
        body = await request.read()
        parsed = oip.parse_request(body, request.headers.get(oip.HEADER))
        lv = await manager.resolve(name, "latest" if version is None else version)
        input_type = lv.manifest.input_type if lv.manifest else "doubles"
        declared_in, declared_out = _declared(lv)
        check_inputs(parsed.inputs, declared_in)
        inputs = oip.rows(parsed.inputs, input_type)
        outputs = await waits.wait(manager.submit(lv, inputs))
        tensors = _as_declared(oip.output_tensors(outputs), declared_out)
        payload, header = oip.encode_response(name, lv.version, parsed, tensors)
        if header is None:
            return web.Response(body=payload, content_type="application/json")
        return web.Response(
            body=payload, content_type="application/octet-stream", headers={oip.HEADER: str(header)}
        )

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

    async def load(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        lv = await manager.load_model(name)
        return json_response(
            {"name": name, "loaded": True, "version": str(lv.version) if lv else None}
        )

    async def unload(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await manager.unload_model(name)
        return json_response({"name": name, "unloaded": True})

    if management is not None:
        routes.post("/v2/repository/models/{name}/load", management(load))
        routes.post("/v2/repository/models/{name}/unload", management(unload))
    routes.get("/v2", server_metadata)
    routes.get("/v2/health/live", live)
    routes.get("/v2/health/ready", ready)
    routes.post("/v2/repository/index", repository_index)
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes.get(base, metadata)
        routes.get(base + "/ready", model_ready)
        routes.post(base + "/infer", protect(infer))


def _target(request: web.Request) -> tuple[str, int | None]:
    name = request.match_info["name"]
    raw = request.match_info.get("version")
    if raw is None or raw == "":
        return name, None
    if parse_version(raw) is None:
        raise BadRequest(f"version {raw!r} is not a positive integer")
    return name, int(raw)


async def model_metadata(manager: ModelManager, name: str, version: int | None) -> dict[str, Any]:
    """V2 model metadata, plus modelcore's per-version states under ``status``."""
    status = manager.model_status(name)
    slot = manager.slots[name]
    known = sorted(set(slot.snapshot or {}) | {v["version"] for v in status["versions"]})
    if version is not None and version not in known:
        raise NotFound(f"model {name!r} has no version {version}")
    lv = slot.copy_of(version)
    manifest = lv.manifest if lv is not None else None
    if manifest is None:
        pick = version if version is not None else (known[-1] if known else None)
        if pick is not None:
            # Store reads (S3, maybe) happen off the event loop.
            manifest = await asyncio.to_thread(_read_manifest, slot.store, slot.folder, pick)
    platform = manifest.backend if manifest else (slot.config.backend or "unknown")
    inputs, outputs = tensor_metadata(
        manifest.metadata if manifest else {}, manifest.input_type if manifest else "doubles"
    )
    body: dict[str, Any] = {
        "name": name,
        "versions": [str(v) for v in known],
        "platform": platform,
        "inputs": inputs,
        "outputs": outputs,
        "status": status,
    }
    if version is not None:
        body["version"] = str(version)
        for entry in status["versions"]:
            if entry["version"] == version:
                body["state"], body["error"] = entry["state"], entry["error"]
    if lv is None and version is None and status["latest"] is None and not known:
        raise ModelUnavailable(f"model {name!r} has no versions")
    return body


def _read_manifest(store: Any, folder: str, version: int) -> Any:
    return store.read_manifest(folder, version) if store.has_manifest(folder, version) else None


_BY_INPUT_TYPE = {
    "doubles": ("FP64", [-1, -1]),
    "floats": ("FP32", [-1, -1]),
    "integers": ("INT64", [-1, -1]),
    "strings": ("BYTES", [-1]),
    "bytes": ("BYTES", [-1]),
}


def _declared(lv: LoadedVersion) -> tuple[list[Any], list[Any]]:
    """The tensors a version's manifest declares, worked out once per loaded version."""
    cached = _DECLARED.get(lv)
    if cached is None:
        manifest = lv.manifest
        cached = (
            tensor_metadata(manifest.metadata, manifest.input_type, fallback=False)
            if manifest is not None
            else ([], [])
        )
        _DECLARED[lv] = cached
    return cached


_DECLARED: weakref.WeakKeyDictionary[LoadedVersion, tuple[list[Any], list[Any]]] = (
    weakref.WeakKeyDictionary()
)


def _as_declared(
    tensors: list[tuple[str, np.ndarray]], declared: list[dict[str, Any]]
) -> list[tuple[str, np.ndarray]]:
    """Name and type outputs as the model's own metadata declares them."""
    if len(tensors) == 1 and tensors[0][0] == "output0" and len(declared) == 1:
        tensors = [(str(declared[0].get("name") or "output0"), tensors[0][1])]
    types = {d.get("name"): oip.DTYPES.get(d.get("datatype", "")) for d in declared}
    out = []
    for name, array in tensors:
        dtype = types.get(name)
        if dtype is not None and array.dtype.kind in "biuf" and array.dtype != dtype:
            array = array.astype(dtype)
        out.append((name, array))
    return out


def check_inputs(tensors: list[oip.Tensor], declared: list[dict[str, Any]]) -> None:
    """Refuse (400) inputs whose names or shapes the model's own metadata rules out."""
    if not declared:
        return
    by_name = {d["name"]: d for d in declared}
    for tensor in tensors:
        spec = by_name.get(tensor.name)
        if spec is None:
            raise BadRequest(
                f"unknown input {tensor.name!r} (the model's inputs: {', '.join(by_name)})"
            )
        shape = spec.get("shape") or []
        fits = len(shape) == len(tensor.shape) and all(
            want in (-1, got) for want, got in zip(shape, tensor.shape, strict=True)
        )
        if shape and not fits:
            raise BadRequest(
                f"input {tensor.name!r}: shape {tensor.shape} does not match the model's {shape}"
            )
        if (spec.get("datatype") == "BYTES") != (tensor.datatype == "BYTES"):
            raise BadRequest(
                f"input {tensor.name!r}: datatype {tensor.datatype} where the model takes "
                f"{spec.get('datatype')}"
            )


def tensor_metadata(
    md: dict[str, Any], input_type: str, fallback: bool = True
) -> tuple[list[Any], list[Any]]:
    """Inputs and outputs as the backend recorded them, or what the input type implies."""
    if isinstance(md.get("tensors"), dict):
        return list(md["tensors"].get("inputs", [])), list(md["tensors"].get("outputs", []))
    onnx = md.get("onnx")
    if isinstance(onnx, dict) and isinstance(onnx.get("inputs"), list):
        return [_v2(t) for t in onnx["inputs"]], [_v2(t) for t in onnx.get("outputs", [])]
    signature = md.get("signature")
    if isinstance(signature, dict) and isinstance(signature.get("inputs"), dict):
        return (
            [_tf(n, t) for n, t in signature["inputs"].items()],
            [_tf(n, t) for n, t in signature.get("outputs", {}).items()],
        )
    if not fallback:
        return [], []
    datatype, shape = _BY_INPUT_TYPE.get(input_type, ("BYTES", [-1]))
    return [{"name": "input0", "datatype": datatype, "shape": shape}], [
        {"name": "output0", "datatype": "BYTES", "shape": [-1]}
    ]


def _v2(tensor: dict[str, Any]) -> dict[str, Any]:
    shape = [d if isinstance(d, int) else -1 for d in (tensor.get("shape") or [])]
    return {"name": tensor.get("name"), "datatype": tensor.get("datatype", "BYTES"), "shape": shape}


def _tf(name: str, tensor: dict[str, Any]) -> dict[str, Any]:
    dtype = tensor.get("dtype", "string")
    try:
        datatype = oip.DATATYPES.get(np.dtype(dtype), "BYTES")
    except TypeError:
        datatype = "BYTES"
    shape = [d if isinstance(d, int) else -1 for d in (tensor.get("shape") or [])]
    return {"name": name, "datatype": datatype, "shape": shape}
