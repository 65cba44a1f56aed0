"""The request body as the HF Inference API takes it: raw audio bytes, or JSON with base64 audio."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from pydantic import ValidationError
from starlette.requests import Request

from gateway.errors import GatewayError
from gateway.schemas import JsonRequest, Parameters

ALLOWED_PARAMETERS = ", ".join(Parameters.model_fields)


@dataclass(frozen=True)
class ClassifyRequest:
    audio: bytes
    parameters: Parameters


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` (from Content-Length, unread)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, f"the body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(body: bytes, content_type: str | None) -> bool:
    if content_type:
        return content_type.split(";")[0].strip().lower() in ("application/json", "text/json")
    # huggingface_hub always labels JSON; an unlabelled body is JSON only if it looks like an object
    # (no audio container starts with "{").
    return body.lstrip()[:1] == b"{"


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            field = item["loc"][-1]
            if len(item["loc"]) > 1 and item["loc"][0] == "parameters":
                problems.append(f"unknown parameter {field!r}; allowed parameters: {ALLOWED_PARAMETERS}")
            else:
                problems.append(f"unknown field {field!r}; allowed: inputs, parameters")
        elif item["type"] == "missing":
            problems.append(f"{where} is required")
        else:
            problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def parse(body: bytes, content_type: str | None) -> ClassifyRequest:
    """Raw audio, or ``{"inputs": <base64>, "parameters": {...}}``; GatewayError(400) says what is wrong."""
    if not _is_json(body, content_type):
        return ClassifyRequest(body, Parameters())
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GatewayError(400, f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise GatewayError(400, 'the JSON body must be an object: {"inputs": <base64 audio>, "parameters": {...}}')
    try:
        request = JsonRequest.model_validate(data)
    except ValidationError as error:
        raise GatewayError(400, _describe(error)) from None
    try:
        audio = base64.b64decode(request.inputs, validate=True)
    except (binascii.Error, ValueError):
        raise GatewayError(400, "inputs is not valid base64") from None
    return ClassifyRequest(audio, request.parameters or Parameters())
