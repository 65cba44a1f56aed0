"""The OpenAPI document and the docs page: what the code really sends, and Swagger UI served offline.

The Swagger UI assets (5.x: it renders OpenAPI 3.1, which FastAPI writes) come from the ``fastapi-swagger``
package (no CDN), so ``/docs`` renders on a host without internet access. Routes declare their errors with
``ERRORS``; FastAPI's automatic 422 is removed, because validation errors are answered as 400. Every answer
is documented with its ``X-Request-Id``, and every operation with the refusals the HTTP protocol layer
answers before any route runs (``PROTOCOL_ERRORS``).
"""

from __future__ import annotations

import base64
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from gateway.schemas import ErrorBody, JsonRequest, Parameters

ASSETS_PATH = "/docs/assets"
_REQUEST_ID_HEADER = {
    "X-Request-Id": {
        "description": "the client's own id (if it is a sane token) or a new one; in the gateway's log and Triton's",
        "schema": {"type": "string"},
    }
}
_ERROR_HEADER = {"X-Error-Message": {"description": "the error message, ASCII, one line", "schema": {"type": "string"}}}
_RETRY_HEADER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}


def _error(description: str, retry: bool = False) -> dict[str, Any]:
    headers = {**_ERROR_HEADER, **(_RETRY_HEADER if retry else {})}
    return {"model": ErrorBody, "description": description, "headers": headers}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("bad JSON, base64, audio, parameters or options"),
    401: _error("missing or wrong API token"),
    404: _error("unknown model"),
    408: _error("the body did not arrive in time"),
    413: _error("body over the limit"),
    415: _error("a multipart form upload (send the file itself as the body, or JSON)"),
    502: _error("Triton failed while running the model"),
    503: _error("Triton unreachable, the model not ready or restarting, or the gateway at its limits", retry=True),
    504: _error("inference timed out"),
}
# Answered by gateway.http_server before the request reaches a route (then the connection closes).
PROTOCOL_ERRORS = {
    "408": "the request headers did not arrive in time",
    "414": "the path and query string are too long",
    "431": "the request headers are too large, or too many",
}


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its $defs substituted in place (the raw-body endpoints declare it by hand)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)


_EXAMPLE_AUDIO = base64.b64encode(b"RIFF....WAVEfmt ").decode()  # the start of a WAV file, for the shape only


def _query_parameters() -> list[dict[str, Any]]:
    """``Parameters`` also read from the query string (``?top_k=3``), as the HF inference toolkit reads them."""
    properties = Parameters.model_json_schema()["properties"]
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": next(s for s in properties[name].get("anyOf", [properties[name]]) if s.get("type") != "null"),
            "description": "as in the JSON body's parameters (a body parameter wins)",
        }
        for name in Parameters.model_fields
    ]


AUDIO_BODY = {
    "parameters": _query_parameters(),
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "example": "<the bytes of an audio file: WAV, FLAC, MP3, OGG, WebM, M4A, AMR, ...>",
            },
            "application/json": {
                "schema": _inline_schema(JsonRequest),
                "examples": {
                    "defaults": {"value": {"inputs": _EXAMPLE_AUDIO}},
                    "parameters": {
                        "value": {
                            "inputs": _EXAMPLE_AUDIO,
                            "parameters": {"top_k": 3, "function_to_apply": "softmax"},
                            "options": {"wait_for_model": True},
                        }
                    },
                },
            },
        },
    },
}


def install(app: FastAPI) -> None:
    """Serve ``/docs`` from local assets and make the schema say what the code sends (no 422)."""
    assets = Path(str(files("fastapi_swagger") / "resources"))
    app.mount(ASSETS_PATH, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    for status, description in PROTOCOL_ERRORS.items():
                        responses.setdefault(status, {"description": description, "content": error_body})
                    for response in responses.values():
                        response["headers"] = {**_REQUEST_ID_HEADER, **response.get("headers", {})}
            for unused in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
