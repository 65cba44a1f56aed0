"""A classify request over HTTP: its body (bounded in size, bytes held, rate and time), parsed as the HF
Inference API takes it, then the one inference path (``gateway.inference``), counted in the metrics."""

from __future__ import annotations

import asyncio

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from gateway import allocator, request_body
from gateway.admission import Reserve
from gateway.dependencies import Services
from gateway.errors import RequestTimeout
from gateway.logs import request_id_of
from gateway.metrics import UNKNOWN_MODEL
from gateway.schemas import Prediction
from gateway.settings import Settings

INLINE_PARSE_BYTES = 256 * 1024  # larger bodies (JSON + base64 of megabytes) are parsed off the event loop
TRIM_AFTER_BYTES = 4 * 1024 * 1024  # after a body this large, free memory goes back to the system
WAIT_HEADER = "x-wait-for-model"  # what HF API clients send (any case) to wait instead of getting a 503


def wants_to_wait(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


async def _read_body(request: Request, settings: Settings, reserve: Reserve) -> bytes:
    reading = request_body.read_limited(
        request, settings.max_body_bytes, reserve, settings.body_min_rate, settings.body_grace_s
    )
    try:
        return await asyncio.wait_for(reading, settings.body_timeout_s)
    except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10's is not the builtin
        raise RequestTimeout(f"the body did not arrive within {settings.body_timeout_s:g} s") from None


async def _parse(body: bytes, request: Request, services: Services) -> request_body.ClassifyRequest:
    content_type, query = request.headers.get("content-type"), dict(request.query_params)
    if len(body) <= INLINE_PARSE_BYTES:
        return request_body.parse(body, content_type, query)
    async with services.admission.large_parse:  # off the event loop, one at a time (memory: 3-4x the body)
        return await run_in_threadpool(request_body.parse, body, content_type, query)


COMPUTE_TIME_HEADER = "x-compute-time"  # as HF's API sends them: Triton's seconds for the request
COMPUTE_TYPE_HEADER = "x-compute-type"  # and where the network ran (cpu, gpu)


async def classify(request: Request, response: Response, services: Services, model_id: str | None) -> list[Prediction]:
    """Classify the request's audio with ``model_id`` (None: the default model); Triton's time and device
    go into ``response``'s headers."""
    tracer = services.tracer
    large = False
    with services.metrics.request() as outcome, services.admission.body() as reserve:
        try:
            with tracer.start_as_current_span("read body") as span:
                body = await _read_body(request, services.settings, reserve)
                span.set_attribute("body.bytes", len(body))
            large = len(body) >= TRIM_AFTER_BYTES
            with tracer.start_as_current_span("parse"):
                parsed = await _parse(body, request, services)
            body = b""  # the audio is all that is kept from here on
            wait = parsed.options.wait_for_model or wants_to_wait(request.headers.get(WAIT_HEADER, ""))
            predictions = await services.inference.classify_waiting(
                model_id, parsed.audio, parsed.parameters, request_id_of(request.scope), outcome, wait
            )
            response.headers[COMPUTE_TIME_HEADER] = f"{outcome.compute_s:.6f}"
            response.headers[COMPUTE_TYPE_HEADER] = outcome.compute_type
            return predictions
        finally:
            if outcome.model != UNKNOWN_MODEL:
                request.state.model = outcome.model  # for the access line
            if large:
                allocator.trim()
