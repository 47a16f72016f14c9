"""``POST /<api>/predict`` of a pipeline API: Clipper's request and answer around the steps.

The body may carry ``"key"``: a split step sends every request with the same
key down the same branch.
"""

from __future__ import annotations

import asyncio
import itertools

from aiohttp import web

from modelcore.errors import BadRequest
from modelcore.pipeline import Pipeline
from modelcore.server.clipper import (
    decode_output,
    parse_body,
    request_inputs,
)
from modelcore.server.errors import json_response
from modelcore.server.timeouts import RequestTimeouts
from modelcore.spec import ApiSpec
from modelcore.types import InputType

_KEYS = frozenset({"input", "input_batch", "key"})


class PipelineApi:
    def __init__(
        self,
        api: ApiSpec,
        pipeline: Pipeline,
        input_type: InputType,
        query_ids: itertools.count[int],
        timeouts: RequestTimeouts,
    ):
        self.api = api
        self.pipeline = pipeline
        self.decode = input_type.decode
        self.query_ids = query_ids
        self.timeouts = timeouts

    async def handle(self, request: web.Request) -> web.Response:
        data = parse_body(await request.read(), _KEYS)
        key = data.get("key")
        if key is not None and not isinstance(key, (str, int)):
            raise BadRequest('"key" must be a string (or an integer)')
        inputs, batch = request_inputs(data, self.decode, self.api)
        work = asyncio.ensure_future(self.pipeline.run(inputs, None if key is None else str(key)))
        outputs = await self.timeouts.wait(work)
        results = [
            {"query_id": next(self.query_ids), "output": decode_output(out), "default": False}
            for out in outputs
        ]
        return json_response({"batch_predictions": results} if batch else results[0])
