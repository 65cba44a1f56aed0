"""One classify request, start to end: the body (bounded in size, bytes held, rate and time), admission,
parsing, the model, Triton, and the metrics that explain it."""

from __future__ import annotations

import asyncio
import time

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from gateway import decode_cost, request_body
from gateway.dependencies import Services
from gateway.errors import GatewayError
from gateway.observability import request_id_of
from gateway.schemas import Prediction

INLINE_PARSE_BYTES = 256 * 1024  # larger bodies (JSON + base64 of megabytes) are parsed off the event loop
UNKNOWN_MODEL_LABEL = "unknown"  # metrics are labelled by served models only: ids from clients are unbounded
WAIT_FOR_MODEL_POLL_S = 1.0
WAIT_HEADER = "x-wait-for-model"  # what HF API clients send (any case) to wait instead of getting a 503


def wants_to_wait(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


def _left_s(deadline: float) -> float:
    """Seconds left until ``deadline`` (``time.perf_counter``), never quite zero."""
    return max(0.001, deadline - time.perf_counter())


async def _read_body(request: Request, services: Services, reserve: request_body.Reserve) -> bytes:
    settings = services.settings
    try:
        reading = request_body.read_limited(
            request, settings.max_body_bytes, reserve, settings.body_min_rate, settings.body_grace_s
        )
        return await asyncio.wait_for(reading, settings.body_timeout_s)
    except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10's is not the builtin
        raise GatewayError(408, f"the body did not arrive within {settings.body_timeout_s:g} s") from None


async def classify(request: Request, services: Services, model_id: str | None) -> list[Prediction]:
    """Classify the request's audio with ``model_id`` (None: the default model)."""
    settings, metrics, triton, tracer = services.settings, services.metrics, services.triton, services.tracer
    start = time.perf_counter()
    label, status = UNKNOWN_MODEL_LABEL, 500
    admitted, reserved = False, 0

    def reserve(size: int) -> None:
        nonlocal reserved
        services.admission.reserve(size)
        reserved += size

    metrics.in_flight.inc()
    try:
        with tracer.start_as_current_span("read body") as span:
            body = await _read_body(request, services, reserve)
            span.set_attribute("body.bytes", len(body))
        services.admission.enter()  # only now: a slow upload holds no slot while it arrives
        admitted = True
        content_type, query = request.headers.get("content-type"), dict(request.query_params)
        with tracer.start_as_current_span("parse"):
            if len(body) > INLINE_PARSE_BYTES:
                parsed = await run_in_threadpool(request_body.parse, body, content_type, query)
            else:
                parsed = request_body.parse(body, content_type, query)
        waiting = parsed.options.wait_for_model or wants_to_wait(request.headers.get(WAIT_HEADER, ""))
        heavy = decode_cost.is_heavy(parsed.audio)
        wait_deadline = start + settings.wait_for_model_s
        attempt_start = start
        while True:
            try:
                model = await services.on_demand.resolve(model_id, settings.default_model)
                label = model.model_id  # a served model: a bounded label
                request.state.model = label  # for the access line
                parameters = parsed.parameters
                deadline = attempt_start + settings.timeout_s
                with services.on_demand.using(model):  # never unloaded while this request is on it
                    async with services.admission.lane(heavy, _left_s(deadline)):
                        with tracer.start_as_current_span("triton infer") as span:
                            span.set_attributes({"model": model.name, "heavy": heavy})
                            answer = await triton.classify(
                                model.name, parsed.audio, parameters.top_k, parameters.function_to_apply,
                                _left_s(deadline), request_id_of(request.scope),
                            )  # fmt: skip
                break
            except GatewayError as error:
                # X-Wait-For-Model / options.wait_for_model: a model that is loading is waited for, up to a limit
                if not waiting or error.status != 503 or time.perf_counter() + WAIT_FOR_MODEL_POLL_S > wait_deadline:
                    raise
                await asyncio.sleep(WAIT_FOR_MODEL_POLL_S)
                attempt_start = time.perf_counter()
        status = 200
        return answer
    except GatewayError as error:
        status = error.status
        raise
    finally:
        services.admission.release(reserved)
        if admitted:
            services.admission.leave()
        metrics.in_flight.dec()
        metrics.requests.labels(label, str(status)).inc()
        metrics.latency.labels(label).observe(time.perf_counter() - start)
