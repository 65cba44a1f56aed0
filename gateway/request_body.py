"""The request as the HF Inference API takes it: raw audio bytes, or JSON with base64 audio; parameters may
also come in the query string (``?top_k=3``), as the HF inference toolkit reads them."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from dataclasses import dataclass

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request

from gateway.admission import Reserve
from gateway.errors import BadRequest, ClientClosed, RequestTimeout, TooLarge, UnsupportedMediaType
from gateway.schemas import JsonRequest, Options, Parameters

ALLOWED_PARAMETERS = ", ".join(Parameters.model_fields)
ALLOWED_OPTIONS = ", ".join(Options.model_fields)
# A valid body has fewer than 20 ':' and ',' (8 keys; base64 holds neither): counting them bounds what
# json.loads builds before it runs (1M keys or array items in a 12 MB body took 1.45 GB of Python objects).
MAX_JSON_SEPARATORS = 100
MAX_PROBLEMS_NAMED = 3  # an error names at most this many problems (it once echoed a million unknown keys)
MAX_NAME_CHARS = 40  # and each unknown name at most this long


@dataclass(frozen=True)
class ClassifyRequest:
    audio: bytes
    parameters: Parameters
    options: Options


async def read_limited(
    request: Request, limit: int, reserve: Reserve, min_rate: float = 0.0, grace_s: float = 0.0
) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` (from Content-Length, unread);
    each chunk is first reserved with ``reserve`` (which may refuse it: the gateway's in-flight budget).
    ``min_rate`` (bytes/s, 0: none): past ``grace_s``, a body whose bytes so far arrive slower on average is
    dropped with 408 as soon as it falls behind, instead of holding its connection for the whole timeout."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    started = time.monotonic()
    stream = request.stream().__aiter__()
    try:
        while True:
            # the latest moment the next chunk may come: when the average falls under min_rate
            wait_s = None if not min_rate else started + max(grace_s, (size + 1) / min_rate) - time.monotonic()
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), wait_s)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10's is not the builtin
                elapsed_s = time.monotonic() - started
                message = f"the body arrives slower than {min_rate:g} bytes/s ({size} bytes in {elapsed_s:.1f} s)"
                raise RequestTimeout(message) from None
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the body is over the limit of {limit} bytes")
            reserve(len(chunk))
            chunks.append(chunk)
    except ClientDisconnect:  # counted as 499 (nginx's "client closed request"), not logged as a failure
        raise ClientClosed("the client disconnected before sending the whole body") from None
    return b"".join(chunks)


# What `curl -d` and HTML forms label a body: JSON sent that way is read as JSON when it looks like an object.
UNLABELLED_TYPES = ("application/x-www-form-urlencoded", "text/plain")


def _is_json(body: bytes, content_type: str | None) -> bool:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type in ("application/json", "text/json"):
        return True
    # huggingface_hub always labels JSON; an unlabelled body (or one labelled as curl -d does) is JSON only if
    # it looks like an object (no audio container starts with "{").
    return media_type in ("", *UNLABELLED_TYPES) and body.lstrip()[:1] == b"{"


def _name(field: object) -> str:
    text = str(field)
    return repr(text if len(text) <= MAX_NAME_CHARS else text[:MAX_NAME_CHARS] + "...")


def _describe(error: ValidationError) -> str:
    problems = []
    items = error.errors()
    for item in items[:MAX_PROBLEMS_NAMED]:
        where = ".".join(_name(part).strip("'") for part in item["loc"])
        if item["type"] == "extra_forbidden":
            field = _name(item["loc"][-1])
            if len(item["loc"]) > 1 and item["loc"][0] == "parameters":
                problems.append(f"unknown parameter {field}; allowed parameters: {ALLOWED_PARAMETERS}")
            elif len(item["loc"]) > 1 and item["loc"][0] == "options":
                problems.append(f"unknown option {field}; allowed options: {ALLOWED_OPTIONS}")
            else:
                problems.append(f"unknown field {field}; allowed: inputs, parameters, options")
        elif item["type"] == "missing":
            problems.append(f"{where} is required")
        else:
            problems.append(f"{where}: {item['msg']}")
    if len(items) > MAX_PROBLEMS_NAMED:
        problems.append(f"and {len(items) - MAX_PROBLEMS_NAMED} more")
    return "; ".join(problems)


def query_parameters(query: dict[str, str]) -> dict[str, object]:
    """Parameters from the query string, typed as in a JSON body (unknown names are refused later)."""
    parameters: dict[str, object] = dict(query)
    if "top_k" in parameters:
        try:
            parameters["top_k"] = int(query["top_k"])
        except ValueError:
            raise BadRequest(f"top_k in the query string must be an integer, not {query['top_k']!r}") from None
    return parameters


def _validated(data: dict) -> JsonRequest:
    try:
        return JsonRequest.model_validate(data)
    except ValidationError as error:
        raise BadRequest(_describe(error)) from None


def parse(body: bytes, content_type: str | None, query: dict[str, str] | None = None) -> ClassifyRequest:
    """Raw audio, or ``{"inputs": <base64>, "parameters": {...}, "options": {...}}``, plus query-string
    parameters (a body parameter wins over the same one in the query string); ``BadRequest`` says what is
    wrong."""
    from_query = query_parameters(query or {})
    if (content_type or "").lower().lstrip().startswith("multipart/"):
        raise UnsupportedMediaType(
            "multipart form uploads (curl -F) are not read: send the audio file itself as the body "
            '(curl --data-binary @clip.wav), or JSON {"inputs": <base64 audio>, "parameters": {...}}'
        )
    if not _is_json(body, content_type):
        request = _validated({"inputs": "", "parameters": from_query})
        return ClassifyRequest(body, request.parameters or Parameters(), Options())
    if body.count(b":") + body.count(b",") > MAX_JSON_SEPARATORS:
        raise BadRequest(
            f"the JSON body has more than {MAX_JSON_SEPARATORS} keys and items; it takes inputs (base64), "
            f"parameters ({ALLOWED_PARAMETERS}) and options ({ALLOWED_OPTIONS})",
        )
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # also: integers over 4300 digits, absurd nesting
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise BadRequest(f"the body is not valid JSON: {reason}") from None
    if not isinstance(data, dict):
        raise BadRequest('the JSON body must be an object: {"inputs": <base64 audio>, "parameters": {...}}')
    if from_query:
        body_parameters = data.get("parameters")
        data["parameters"] = {**from_query, **(body_parameters if isinstance(body_parameters, dict) else {})}
    request = _validated(data)
    try:
        audio = base64.b64decode(request.inputs, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("inputs is not valid base64") from None
    return ClassifyRequest(audio, request.parameters or Parameters(), request.options or Options())
