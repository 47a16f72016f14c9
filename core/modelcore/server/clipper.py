"""Clipper's query API: ``POST /<api>/predict`` with ``{"input": x}`` or ``{"input_batch": [...]}``."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from modelcore import _json
from modelcore.assemble import ApiModels
from modelcore.errors import (
    BadRequest,
    ModelUnavailable,
    NotFound,
    PredictionError,
)
from modelcore.runtime import LoadedVersion, ModelManager
from modelcore.runtime.batching import DeadlinePassed
from modelcore.runtime.manager import VersionRef
from modelcore.runtime.pcache import PredictionCache, input_key
from modelcore.server.errors import json_response
from modelcore.server.timeouts import RequestTimeouts
from modelcore.spec import ApiSpec
from modelcore.store.layout import parse_version as version_number
from modelcore.types import InputType

log = logging.getLogger(__name__)

T = TypeVar("T")

_KEYS = frozenset({"input", "input_batch", "version"})


class ClipperApi:
    """One API of the spec, with everything a request needs resolved at start-up."""

    def __init__(
        self,
        api: ApiSpec,
        manager: ModelManager,
        input_type: InputType,
        query_ids: itertools.count[int],
        models: ApiModels,
        timeouts: RequestTimeouts | None = None,
    ):
        self.api = api
        self.manager = manager
        self.decode = input_type.decode
        self.query_ids = query_ids
        self.has_default = "default_output" in api.model_fields_set
        self.models = models
        self.single = models.single
        self.timeouts = timeouts or RequestTimeouts(60.0)
        # With an SLO, its deadline replaces the request timeout (and answers the default).
        self.slo = (
            RequestTimeouts(
                min(api.slo_ms / 1000.0, self.timeouts.seconds),
                DeadlinePassed,
                f"no answer within the API's {api.slo_ms:g} ms SLO",
            )
            if api.slo_ms
            else None
        )
        self.cache = PredictionCache(api.cache.bytes) if api.cache else None
        self.slo_defaults = 0
        self.version = parse_version(api.version)

    def close(self) -> None:
        if self.slo is not None:
            self.slo.close()

    def _model(self, request: web.Request) -> str:
        """The model a request is for: the API's one model, or ``/<api>/<model>/predict``."""
        if self.single is not None:
            return self.single
        name = request.match_info["model"]
        if self.models.serves(self.manager, name):
            return name
        raise NotFound(f"API {self.api.name!r} serves no model {name!r}")

    async def handle(self, request: web.Request) -> web.Response:
        started = asyncio.get_running_loop().time() if self.slo is not None else 0.0
        model = self.single or self._model(request)
        data = parse_body(await request.read())
        version = parse_version(data["version"]) if "version" in data else self.version
        inputs, batch = request_inputs(data, self.decode, self.api)
        lv = self.manager.current(model) if version == "latest" else None
        if lv is None:
            try:
                lv = await self.manager.resolve(model, version)
            except ModelUnavailable as exc:
                if not self.has_default:
                    raise
                return self._defaults(len(inputs), batch, exc.message)
        if self.cache is None and self.slo is None:
            fresh = self.manager.answer_now(lv, inputs)
            if fresh is None:
                # submit() holds the version before anything can suspend this request.
                fresh = await self.timeouts.wait(self.manager.submit(lv, inputs))
            outputs = [out if type(out) is not str else decode_output(out) for out in fresh]
        else:
            answered = await self._outputs(lv, inputs, started)
            if answered is None:
                self.slo_defaults += len(inputs)
                why = f"no answer within the API's {self.api.slo_ms:g} ms SLO"
                return self._defaults(len(inputs), batch, why)
            outputs = answered
        ids = self.query_ids
        try:
            if not batch:
                return json_response(
                    {"query_id": next(ids), "output": outputs[0], "default": False}
                )
            results = [{"query_id": next(ids), "output": out, "default": False} for out in outputs]
            return json_response({"batch_predictions": results})
        except TypeError as exc:
            raise PredictionError(f"model {model} v{lv.version}: {exc}") from None

    async def _outputs(
        self, lv: LoadedVersion, inputs: list[Any], started: float
    ) -> list[Any] | None:
        """Decoded outputs, from the cache where it has them; ``None`` when the SLO ran out."""
        cache = self.cache
        keys: list[tuple[str, int, str, bytes] | None] = []
        outputs: list[Any] = [None] * len(inputs)
        todo = list(range(len(inputs)))
        if cache is not None:
            todo = []
            for i, value in enumerate(inputs):
                digest = input_key(value)
                key = None if digest is None else (lv.name, lv.version, lv.fingerprint, digest)
                keys.append(key)
                hit, out = cache.get(key) if key is not None else (False, None)
                if hit:
                    outputs[i] = out
                else:
                    todo.append(i)
        if todo:
            pending = [inputs[i] for i in todo]
            # submit() holds the version before anything can suspend this request.
            if self.slo is None:
                fresh = await self.timeouts.wait(self.manager.submit(lv, pending))
            else:
                deadline = started + self.slo.seconds
                try:
                    fresh = await self.slo.wait(
                        self.manager.submit(lv, pending, deadline), deadline
                    )
                except DeadlinePassed:
                    return None  # the late result is dropped, never queued behind others
            for i, out in zip(todo, fresh, strict=True):
                outputs[i] = decoded = decode_output(out)
                if cache is not None and keys[i] is not None:
                    cache.put(keys[i], decoded)  # type: ignore[arg-type]
        return outputs

    def stats(self) -> dict[str, Any]:
        """What ``GET /v2/apis/<api>`` shows: routes, models, cache and batching figures."""
        models = self.models.current(self.manager)
        batching = {}
        for name in models:
            slot = self.manager.slots.get(name)
            lv = slot.latest if slot is not None else None
            if lv is not None and lv.batcher is not None:
                batching[name] = {"version": lv.version, **lv.batcher.stats()}
        return {
            "name": self.api.name,
            "models": models,
            "slo_ms": self.api.slo_ms,
            "slo_defaults": self.slo_defaults,
            "cache": self.cache.stats() if self.cache is not None else None,
            "batching": batching,
        }

    def _defaults(self, count: int, batch: bool, why: str) -> web.Response:
        results = [
            {
                "query_id": next(self.query_ids),
                "output": self.api.default_output,
                "default": True,
                "default_explanation": why,
            }
            for _ in range(count)
        ]
        return json_response({"batch_predictions": results} if batch else results[0])


def request_inputs(
    data: dict[str, Any], decode: Callable[[Any], Any], api: ApiSpec
) -> tuple[list[Any], bool]:
    """The decoded list of inputs of a Clipper request, and whether it was a batch."""
    if "input" in data:
        if "input_batch" in data:
            raise BadRequest('send either "input" or "input_batch", not both')
        try:
            return [decode(data["input"])], False
        except BadRequest as exc:
            raise _input_error(exc, "input", api) from None
    if "input_batch" in data:
        raw = data["input_batch"]
        if not isinstance(raw, list) or not raw:
            raise BadRequest('"input_batch" must be a non-empty JSON array of inputs')
        decoded = []
        for i, value in enumerate(raw):
            try:
                decoded.append(decode(value))
            except BadRequest as exc:
                raise _input_error(exc, f"input_batch[{i}]", api) from None
        return decoded, True
    raise BadRequest('the body needs "input" (one input) or "input_batch" (a list of inputs)')


def _input_error(exc: BadRequest, where: str, api: ApiSpec) -> BadRequest:
    return BadRequest(f"{where}: {exc.message} (API {api.name!r} takes {api.input_type})")


def parse_body(body: bytes, keys: frozenset[str] = _KEYS) -> dict[str, Any]:
    if not body:
        raise BadRequest("empty request body; send a JSON object")
    try:
        data = _json.loads(body)
    except (_json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object with "input" or "input_batch"')
    if not keys.issuperset(data):
        unknown = data.keys() - keys
        allowed = ", ".join(f'"{k}"' for k in sorted(keys))
        raise BadRequest(
            f"unknown field(s) {', '.join(sorted(map(repr, unknown)))}; allowed: {allowed}"
        )
    return data


def parse_version(value: Any) -> VersionRef:
    if value == "latest":
        return "latest"
    if isinstance(value, str) and version_number(value) is not None:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f'"version" must be a positive integer or "latest", got {value!r}')
    return value


def decode_output(output: Any) -> Any:
    """A string output that parses as JSON is returned as JSON, as Clipper does."""
    if isinstance(output, str):
        try:
            return _json.loads(output)
        except (_json.JSONDecodeError, ValueError):
            return output
    return output
