"""The FastAPI app: the HF Inference API for audio classification, in front of Triton. ``create_app`` composes
the lifetime objects (``gateway.dependencies.Services``), the error handlers, the docs and the routes; it takes
its outside clients (Triton's, the loader's), so tests run the whole app in process against stand-ins."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from gateway import allocator, errors, openapi
from gateway.admission import Admission, Slots
from gateway.classify import COMPUTE_TIME_HEADER, COMPUTE_TYPE_HEADER
from gateway.dependencies import Services
from gateway.drain import Drain, DrainGuard
from gateway.errors import Unavailable
from gateway.inference import Inference
from gateway.loader_client import LoaderClient
from gateway.logs import RequestIds
from gateway.metrics import Metrics
from gateway.on_demand import OnDemand
from gateway.routes import router
from gateway.settings import Settings, from_environment
from gateway.tracing import TraceRequests, Tracing
from gateway.triton import Triton
from triton_control import AsyncTritonControl

CORS_EXPOSED_HEADERS = (  # what a page's script may read
    "X-Request-Id",
    "X-Error-Message",
    "Retry-After",
    COMPUTE_TIME_HEADER,
    COMPUTE_TYPE_HEADER,
)
TritonClientFactory = Callable[[Settings], AsyncTritonControl]  # called in the lifespan: the client needs the loop


def triton_client(settings: Settings) -> AsyncTritonControl:
    return AsyncTritonControl(settings.triton_url, settings.triton_lb_policy)


async def _trim_forever(on_demand: OnDemand, interval_s: float) -> None:
    """Keep the on-demand bound after Triton restarts (it then loads every model its repository holds)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await on_demand.trim()
        except Unavailable as error:  # Triton away: the next round
            logging.getLogger("gateway.on_demand").warning("trimming on-demand models: %s", error.message)


def create_app(
    settings: Settings | None = None,
    triton_factory: TritonClientFactory = triton_client,
    loader: LoaderClient | None = None,
) -> FastAPI:
    """The app; its Triton client is made by ``triton_factory`` and closed by the lifespan; ``loader`` is the
    on-demand loader's client (default: ``GATEWAY_LOADER_URL``'s)."""
    settings = settings or from_environment()
    loader = loader or LoaderClient(settings.loader_url)
    allocator.return_large_buffers()  # in every worker process: large bodies' memory goes back when freed
    drain = Drain(settings.drain_s, settings.retry_after_s)
    tracing = Tracing()  # here, not in the lifespan: the middleware below needs it

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = Metrics()
        on_reload = metrics.stub_reloads.inc
        triton = Triton(triton_factory(settings), settings.models_refresh_s, lambda _model: on_reload())
        admission = Admission(
            Slots(settings.max_concurrent_requests, "requests in progress", metrics.in_flight),
            Slots(settings.max_streams, "streams", metrics.streams),
            settings.max_inflight_body_bytes,
            settings.max_heavy_requests,
        )
        on_demand = OnDemand(settings, triton, loader, metrics)
        inference = Inference(settings, triton, on_demand, admission, metrics, tracing.tracer)
        app.state.services = Services(settings, triton, metrics, admission, on_demand, tracing.tracer, inference)
        drain.install()  # here: after the server's own signal handlers, in the serving process
        trimming = (
            asyncio.create_task(_trim_forever(on_demand, settings.models_refresh_s)) if on_demand.patterns else None
        )
        try:
            yield
        finally:
            if trimming is not None:
                trimming.cancel()
            await triton.close()
            tracing.shutdown()

    app = FastAPI(
        title="hf-audio-triton gateway",
        description="The Hugging Face Inference API for audio classification, served by Triton.",
        lifespan=lifespan,
        docs_url=None,  # served by gateway.openapi from local assets
        redoc_url=None,
    )
    app.add_middleware(DrainGuard, drain=drain)
    app.add_middleware(TraceRequests, tracing=tracing)
    if settings.cors_origin_list():  # browser pages on those origins may call the API (preflights answered)
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list(),
            allow_methods=["GET", "HEAD", "POST"],
            allow_headers=["*"],
            expose_headers=list(CORS_EXPOSED_HEADERS),
            max_age=600,
        )
    app.add_middleware(RequestIds)  # added last, so outermost: the drain's 503s carry a request id too
    openapi.install(app)
    errors.install(app, settings.retry_after_s)
    app.include_router(router)
    # The try-it page: static files, no build step, nothing fetched from elsewhere (it works offline).
    app.mount("/ui", StaticFiles(directory=Path(__file__).parent / "static", html=True), name="ui")
    return app
