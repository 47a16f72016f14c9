"""``GET /openapi.json``: an OpenAPI 3.0 document of the routes this server built from its spec."""

from __future__ import annotations

from typing import Any

import modelcore
from modelcore.spec import ApiSpec, LoadedSpec

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "cause": {"type": "string", "nullable": True}},
    "required": ["error"],
}
_NUMBER = {"type": "number"}
_REQUESTED = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "parameters": {
            "type": "object",
            "properties": {"binary_data": {"type": "boolean"}},
            "additionalProperties": False,
        },
    },
    "required": ["name"],
    "additionalProperties": False,
}


def _input_schema(input_type: str) -> dict[str, Any]:
    if input_type in ("doubles", "floats"):
        return {"type": "array", "items": _NUMBER, "minItems": 1}
    if input_type == "integers":
        return {"type": "array", "items": {"type": "integer"}, "minItems": 1}
    if input_type == "bytes":
        return {"type": "string", "format": "byte"}
    return {"type": "string"}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"description": "an error", "content": {"application/json": {"schema": _ERROR}}}
        for code in codes
    }


def _clipper(api: ApiSpec, route: str, model_param: bool) -> dict[str, Any]:
    item = _input_schema(api.input_type)
    answer = {
        "type": "object",
        "properties": {
            "query_id": {"type": "integer"},
            "output": {},
            "default": {"type": "boolean"},
            "default_explanation": {"type": "string"},
        },
        "required": ["query_id", "output", "default"],
    }
    operation: dict[str, Any] = {
        "summary": f"Predict with API {api.name} (Clipper's query API)",
        "operationId": f"predict_{api.name}",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "input": item,
                            "input_batch": {"type": "array", "items": item, "minItems": 1},
                            "version": {
                                "oneOf": [
                                    {"type": "integer", "minimum": 1},
                                    {"type": "string", "enum": ["latest"]},
                                ]
                            },
                        },
                        "additionalProperties": False,
                        "oneOf": [{"required": ["input"]}, {"required": ["input_batch"]}],
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "the prediction(s)",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                answer,
                                {
                                    "type": "object",
                                    "properties": {
                                        "batch_predictions": {"type": "array", "items": answer}
                                    },
                                },
                            ]
                        }
                    }
                },
            },
            **_errors(400, 404, 413, 500, 503, 504),
        },
    }
    if model_param:
        operation["parameters"] = [
            {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
        ]
    return {"post": operation}


def _v2_paths() -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string"},
            "data": {"type": "array", "items": _NUMBER},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
                "additionalProperties": False,
            },
        },
        "required": ["name", "shape", "datatype"],
    }
    infer = {
        "post": {
            "summary": "Infer (Open Inference Protocol)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "inputs": {"type": "array", "items": tensor, "minItems": 1},
                                "outputs": {"type": "array", "items": _REQUESTED},
                                "parameters": {
                                    "type": "object",
                                    "properties": {"binary_data_output": {"type": "boolean"}},
                                    "additionalProperties": False,
                                },
                            },
                            "required": ["inputs"],
                        }
                    }
                },
            },
            "responses": {"200": {"description": "the outputs"}, **_errors(400, 404, 500, 503)},
        }
    }
    simple = {"get": {"responses": {"200": {"description": "ok"}, **_errors(400, 404, 503)}}}
    paths: dict[str, Any] = {
        "/v2": {"get": {"summary": "Server metadata", "responses": {"200": {"description": "ok"}}}},
        "/v2/health/live": {"get": {"responses": {"200": {"description": "live"}}}},
        "/v2/health/ready": {
            "get": {"responses": {"200": {"description": "ready"}, **_errors(503)}}
        },
        "/v2/repository/index": {"post": {"responses": {"200": {"description": "every version"}}}},
    }
    for base, params in (
        ("/v2/models/{name}", [name]),
        ("/v2/models/{name}/versions/{version}", [name, version]),
    ):
        for suffix, item in (("", simple), ("/ready", simple), ("/infer", infer)):
            paths[base + suffix] = {
                method: {**operation, "parameters": params} for method, operation in item.items()
            }
    return paths


def build(loaded: LoadedSpec, routes: dict[str, tuple[ApiSpec, bool]]) -> dict[str, Any]:
    """The document for a server built from ``loaded``; ``routes``: path -> (api, per-model route)."""
    paths = _v2_paths()
    for path, (api, model_param) in routes.items():
        if api.handler is not None:
            paths[path] = {
                "post": {
                    "summary": f"Handler API {api.name}",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                }
                            }
                        }
                    },
                    "responses": {
                        "200": {"description": "the handler's answer"},
                        **_errors(400, 404, 405, 500, 503),
                    },
                },
            }
        else:
            paths[path] = _clipper(api, path, model_param)
    paths["/metrics"] = {"get": {"responses": {"200": {"description": "Prometheus text"}}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "modelcore",
            "version": modelcore.__version__,
            "description": f"Routes built from {loaded.source}",
        },
        "paths": paths,
    }
