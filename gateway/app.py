"""The FastAPI app: the HF Inference API for audio classification, in front of Triton."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import tritonclient.grpc.aio as grpcclient
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from tritonclient.utils import InferenceServerException

from gateway import openapi, request_body
from gateway.admission import Admission
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.schemas import ModelInfo, Prediction
from gateway.settings import Settings
from gateway.triton import StubRecovery, TritonModels, classify, connect

INLINE_PARSE_BYTES = 256 * 1024
UNKNOWN_MODEL_LABEL = "unknown"
WAIT_FOR_MODEL_POLL_S = 1.0


@dataclass
class Services:
    """What the app holds for its lifetime."""

    settings: Settings
    client: grpcclient.InferenceServerClient
    models: TritonModels
    metrics: Metrics
    recovery: StubRecovery
    admission: Admission


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def check_token(request: Request, services: ServicesDep) -> None:
    """401 unless the configured API token is presented as ``Authorization: Bearer <token>``."""
    token = services.settings.api_token
    if token is None or not token.get_secret_value():  # unset, or set empty (as docker-compose does)
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    # "Bearer: <token>" is how the HF API docs write it; "Bearer <token>" is the standard.
    if scheme.rstrip(":").lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), token.get_secret_value().encode()
    ):
        raise GatewayError(401, "missing or invalid API token: send 'Authorization: Bearer <token>'")


def _error(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    # Headers must be one line of ASCII: a multi-line message (onnxruntime's) would make uvicorn drop the answer.
    one_line = " ".join(message.split())
    headers = {"X-Error-Message": one_line.encode("ascii", "replace").decode()[:500]}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, its Triton client created and closed by the lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(settings.triton_url, settings.triton_lb_policy)
        models = TritonModels(client, settings.models_refresh_s)
        admission = Admission(settings.max_concurrent_requests, settings.max_inflight_body_bytes)
        app.state.services = Services(settings, client, models, Metrics(), StubRecovery(client), admission)
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(
        title="hf-audio-triton gateway",
        description="The Hugging Face Inference API for audio classification, served by Triton.",
        lifespan=lifespan,
        docs_url=None,  # served by gateway.openapi from local assets
        redoc_url=None,
    )
    openapi.install(app)

    @app.exception_handler(GatewayError)
    async def gateway_error(_: Request, error: GatewayError) -> JSONResponse:
        return _error(error.status, error.message, settings.retry_after_s if error.status == 503 else None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        return _error(400, "; ".join(str(e.get("msg")) for e in error.errors()))

    async def run(request: Request, services: Services, model_id: str | None) -> list[Prediction]:
        metrics = services.metrics
        start = time.perf_counter()
        label = UNKNOWN_MODEL_LABEL  # metrics are labelled by served models only: ids from clients are unbounded
        status = 500
        admitted, reserved = False, 0

        def reserve(size: int) -> None:
            nonlocal reserved
            services.admission.reserve(size)
            reserved += size

        metrics.in_flight.inc()
        try:
            services.admission.enter()
            admitted = True
            try:
                body = await asyncio.wait_for(
                    request_body.read_limited(request, settings.max_body_bytes, reserve), settings.body_timeout_s
                )
            except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10's is not the builtin
                raise GatewayError(408, f"the body did not arrive within {settings.body_timeout_s:g} s") from None
            content_type = request.headers.get("content-type")
            query = dict(request.query_params)
            if len(body) > INLINE_PARSE_BYTES:  # JSON + base64 of megabytes: keep it off the event loop
                parsed = await run_in_threadpool(request_body.parse, body, content_type, query)
            else:
                parsed = request_body.parse(body, content_type, query)
            deadline = start + settings.timeout_s
            while True:
                try:
                    metadata = await services.models.find(model_id or await _default_model(services))
                    label = metadata.model_id  # a served model: a bounded label
                    answer = await classify(
                        services.client,
                        services.recovery,
                        metadata.name,
                        parsed.audio,
                        parsed.parameters.top_k,
                        parsed.parameters.function_to_apply,
                        max(0.001, deadline - time.perf_counter()),
                    )
                    break
                except GatewayError as error:
                    # options.wait_for_model: a model that is loading is waited for, up to the timeout
                    waiting = parsed.options.wait_for_model and error.status == 503
                    if not waiting or time.perf_counter() + WAIT_FOR_MODEL_POLL_S > deadline:
                        raise
                    await asyncio.sleep(WAIT_FOR_MODEL_POLL_S)
            status = 200
            return answer
        except GatewayError as error:
            status = error.status
            raise
        finally:
            if admitted:
                services.admission.leave(reserved)
            metrics.in_flight.dec()
            metrics.requests.labels(label, str(status)).inc()
            metrics.latency.labels(label).observe(time.perf_counter() - start)

    @app.post(
        "/models/{model_id:path}",
        response_model=list[Prediction],
        responses=openapi.ERRORS,
        openapi_extra=openapi.AUDIO_BODY,
        dependencies=[Depends(check_token)],
        summary="Classify audio with a model (its id, e.g. org/name, or its Triton name)",
    )
    async def classify_with(model_id: str, request: Request, services: ServicesDep) -> list[Prediction]:
        return await run(request, services, model_id.rstrip("/") or None)  # a trailing slash is the same model

    @app.post(
        "/",
        response_model=list[Prediction],
        responses=openapi.ERRORS,
        openapi_extra=openapi.AUDIO_BODY,
        dependencies=[Depends(check_token)],
        summary="Classify audio with the default model",
    )
    async def classify_default(request: Request, services: ServicesDep) -> list[Prediction]:
        return await run(request, services, None)

    @app.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        summary="Triton and every served model ready (models that failed to load are listed under 'failed')",
        responses={503: openapi.ERRORS[503]},
    )
    async def ready(services: ServicesDep) -> JSONResponse:
        try:
            live = await services.client.is_server_ready()
        except InferenceServerException as error:
            raise GatewayError(503, f"Triton is unreachable: {error.message()}") from None
        models = await services.models.all(force=True)
        if not live or not models:
            raise GatewayError(
                503, "Triton is not ready" if not live else "Triton serves no audio-classification model"
            )
        if services.recovery.recovering:
            raise GatewayError(
                503, f"models restarting after a crash: {', '.join(sorted(services.recovery.recovering))}"
            )
        not_ready = [n for n in models if not await services.client.is_model_ready(n)]
        if not_ready:
            raise GatewayError(503, f"models not ready: {', '.join(not_ready)}")
        if settings.api_token is not None and settings.api_token.get_secret_value():
            return JSONResponse({"status": "ready"})  # with a token, the model list is for authenticated clients
        # Models that failed to load are named, with Triton's reason; the others are served regardless.
        served = sorted(m.metadata.model_id for m in models.values())
        return JSONResponse({"status": "ready", "models": served, "failed": services.models.failed})

    @app.get("/models", response_model=list[ModelInfo], dependencies=[Depends(check_token)], summary="Served models")
    async def models(services: ServicesDep) -> list[ModelInfo]:
        served = await services.models.all(force=True)
        return [
            ModelInfo(
                id=m.metadata.model_id,
                name=m.metadata.name,
                architecture=m.metadata.architecture,
                labels=m.metadata.labels,
                sampling_rate=m.metadata.sampling_rate,
                function_to_apply=m.metadata.function_to_apply,
                max_seconds=m.metadata.max_seconds,
                min_samples=m.metadata.min_samples,
                long_audio=m.metadata.long_audio,
                ready=m.ready,
            )
            for m in sorted(served.values(), key=lambda m: m.metadata.model_id)
        ]

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics(services: ServicesDep) -> Response:
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _default_model(services: Services) -> str:
    if services.settings.default_model:
        return services.settings.default_model
    models = await services.models.all()
    if len(models) == 1:
        return next(iter(models))
    served = ", ".join(sorted(m.metadata.model_id for m in models.values())) or "none"
    raise GatewayError(404, f"no default model: set GATEWAY_DEFAULT_MODEL, or use /models/<id>; served: {served}")
