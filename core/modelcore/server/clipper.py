"""Clipper's query API: ``POST /<api>/predict`` with ``{"input": x}`` or ``{"input_batch": [...]}``."""

from __future__ import annotations

import itertools
import logging
from typing import Any

from aiohttp import web

from modelcore import _json
from modelcore.assemble import ApiModels
from modelcore.errors import BadRequest, ModelUnavailable, NotFound
from modelcore.runtime import ModelManager
from modelcore.runtime.manager import VersionRef
from modelcore.server.errors import json_response
from modelcore.spec import ApiSpec
from modelcore.types import InputType

log = logging.getLogger(__name__)

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
    ):
        self.api = api
        self.manager = manager
        self.decode = input_type.decode
        self.query_ids = query_ids
        self.has_default = "default_output" in api.model_fields_set
        self.models = models
        self.single = models.single

    def _model(self, request: web.Request) -> str:
        """The model a request is for: the API's one model, or ``/<api>/<model>/predict``."""
        if self.single is not None:
            return self.single
        name = request.match_info["model"]
        if self.models.group is not None:
            slot = self.manager.slots.get(name)
            if slot is not None and slot.config.group == self.models.group:
                return name
        elif name in self.models.names:
            return name
        raise NotFound(f"API {self.api.name!r} serves no model {name!r}")

    async def handle(self, request: web.Request) -> web.Response:
        model = self._model(request)
        body = await request.read()
        data = parse_body(body)
        version = parse_version(data.get("version", self.api.version))
        if "input" in data:
            if "input_batch" in data:
                raise BadRequest('send either "input" or "input_batch", not both')
            inputs, batch = [self._decode(data["input"], None)], False
        elif "input_batch" in data:
            raw = data["input_batch"]
            if not isinstance(raw, list) or not raw:
                raise BadRequest('"input_batch" must be a non-empty JSON array of inputs')
            inputs, batch = [self._decode(x, i) for i, x in enumerate(raw)], True
        else:
            raise BadRequest(
                'the body needs "input" (one input) or "input_batch" (a list of inputs)'
            )
        try:
            lv = await self.manager.resolve(model, version)
        except ModelUnavailable as exc:
            if not self.has_default:
                raise
            return self._defaults(len(inputs), batch, exc.message)
        outputs = await self.manager.predict(lv, inputs)
        results = [
            {"query_id": next(self.query_ids), "output": decode_output(out), "default": False}
            for out in outputs
        ]
        return json_response({"batch_predictions": results} if batch else results[0])

    def _decode(self, value: Any, index: int | None) -> Any:
        try:
            return self.decode(value)
        except BadRequest as exc:
            where = f"input_batch[{index}]" if index is not None else "input"
            raise BadRequest(
                f"{where}: {exc.message} (API {self.api.name!r} takes {self.api.input_type})"
            ) from None

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


def parse_body(body: bytes) -> dict[str, Any]:
    if not body:
        raise BadRequest("empty request body; send a JSON object")
    try:
        data = _json.loads(body)
    except (_json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest('the body must be a JSON object with "input" or "input_batch"')
    unknown = data.keys() - _KEYS
    if unknown:
        raise BadRequest(
            f"unknown field(s) {', '.join(sorted(map(repr, unknown)))}; "
            'allowed: "input", "input_batch", "version"'
        )
    return data


def parse_version(value: Any) -> VersionRef:
    if value == "latest":
        return "latest"
    if isinstance(value, str) and value.isdigit():
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
