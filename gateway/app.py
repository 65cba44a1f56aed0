"""The FastAPI app: the HF Inference API for audio classification, in front of Triton. ``create_app`` composes
the lifetime objects (``gateway.dependencies.Services``), the error handlers, the docs and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gateway import errors, openapi
from gateway.admission import Admission
from gateway.dependencies import Services
from gateway.metrics import Metrics
from gateway.routes import router
from gateway.settings import Settings
from gateway.triton import Triton


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; its Triton connection is opened and closed by the lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        triton = Triton(settings.triton_url, settings.triton_lb_policy, settings.models_refresh_s)
        admission = Admission(settings.max_concurrent_requests, settings.max_inflight_body_bytes, settings.max_streams)
        app.state.services = Services(settings, triton, Metrics(), admission)
        try:
            yield
        finally:
            await triton.close()

    app = FastAPI(
        title="hf-audio-triton gateway",
        description="The Hugging Face Inference API for audio classification, served by Triton.",
        lifespan=lifespan,
        docs_url=None,  # served by gateway.openapi from local assets
        redoc_url=None,
    )
    openapi.install(app)
    errors.install(app, settings.retry_after_s)
    app.include_router(router)
    # The try-it page: static files, no build step, nothing fetched from elsewhere (it works offline).
    app.mount("/ui", StaticFiles(directory=Path(__file__).parent / "static", html=True), name="ui")
    return app
