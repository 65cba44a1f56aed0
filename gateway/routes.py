"""The HTTP routes: the HF Inference API's classify calls, and what operators probe (health, ready, models,
metrics). Thin: the work happens in ``gateway.classify`` and ``gateway.triton``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway import openapi
from gateway.classify import classify
from gateway.dependencies import Authorized, ServicesDep
from gateway.schemas import ModelInfo, Prediction
from gateway.streaming import serve_stream

router = APIRouter()
STATIC = Path(__file__).parent / "static"  # the try-it page, and its icon

_CLASSIFY = {
    "response_model": list[Prediction],
    "responses": openapi.ERRORS,
    "openapi_extra": openapi.AUDIO_BODY,
    "dependencies": [Authorized],
}


@router.post(
    "/models/{model_id:path}",
    summary="Classify audio with a model (its id, e.g. org/name, or its Triton name)",
    **_CLASSIFY,
)
async def classify_with(model_id: str, request: Request, response: Response, services: ServicesDep) -> list[Prediction]:
    return await classify(request, response, services, model_id.rstrip("/") or None)  # a trailing slash: the same model


@router.websocket("/models/{model_id:path}/stream")
async def stream_with(websocket: WebSocket, model_id: str, services: ServicesDep) -> None:
    """Live audio classified window by window (protocol: ``gateway.streaming``)."""
    await serve_stream(websocket, services, model_id)


@router.websocket("/stream")
async def stream_default(websocket: WebSocket, services: ServicesDep) -> None:
    """Live audio with the default model."""
    await serve_stream(websocket, services, None)


@router.post("/", summary="Classify audio with the default model", **_CLASSIFY)
async def classify_default(request: Request, response: Response, services: ServicesDep) -> list[Prediction]:
    return await classify(request, response, services, None)


# HEAD (load balancers, probes) answers as GET does, without the body; documented once, as GET.
@router.get("/", summary="Health, as HF's inference containers answer it")
@router.head("/", include_in_schema=False)
async def root() -> dict[str, str]:
    return {"ok": "ok"}


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@router.get("/health", summary="Liveness")
@router.head("/health", include_in_schema=False)
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Triton and every served model ready (models that failed to load are listed under 'failed')",
    responses={503: openapi.ERRORS[503]},
)
@router.head("/ready", include_in_schema=False)
async def ready(services: ServicesDep) -> dict[str, object]:
    models = await services.triton.ready()
    if services.token_required:
        return {"status": "ready"}  # with a token, which models exist is for authenticated clients
    # Models that failed to load are named, with Triton's reason; the others are served regardless.
    return {"status": "ready", "models": sorted(m.model_id for m in models.served.values()), "failed": models.failed}


@router.get(
    "/models",
    response_model=list[ModelInfo],
    dependencies=[Authorized],
    responses={401: openapi.ERRORS[401]},
    summary="Served models, then those that failed to load (ready false, with the reason), then on-demand ids "
    "loading, unloaded or refused",
)
async def models(services: ServicesDep) -> list[ModelInfo]:
    listing = await services.triton.models(force=True)
    default = listing.named(services.settings.default_model)  # what POST / resolves to
    ordered = sorted(listing.served.values(), key=lambda m: m.model_id)
    served = [ModelInfo.served(m, m is default) for m in ordered]
    failed = [ModelInfo.failed(name, reason) for name, reason in sorted(listing.failed.items())]
    known = {m.model_id for m in listing.served.values()}
    on_demand = [
        ModelInfo.not_loaded(e.model_id, e.name, e.state, e.error)
        for e in services.on_demand.states()
        if e.model_id not in known
    ]
    return served + failed + on_demand


@router.get(
    "/metrics",
    dependencies=[Authorized],  # its labels name every served model: with a token, for authenticated scrapers
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus' text format",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
        401: openapi.ERRORS[401],
    },
    summary="Prometheus metrics (needs the API token when one is set)",
)
async def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
