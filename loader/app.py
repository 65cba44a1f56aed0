"""The loader's HTTP API, for the gateway (not for clients: it is not exposed beyond the stack's network).

``POST /load/{model_id}``: 200 ``{"state": "exported", "name"}``, 202 ``{"state": "queued"|"exporting",
"name", "estimated_time"}``, or a refusal, 4xx/5xx ``{"error"}`` (remembered for a while, so a client that
retries starts nothing). ``GET /jobs``, ``/health``, ``/metrics``.

Why HTTP rather than request objects in the repository: a refusal (no such id, a text classifier, pickle
weights) must reach the waiting client in well under a second, and the gateway needs an estimate of the export
time for its 503; both are one round trip here, where a request file would need a polling loop on each side.
The export's result still travels through the repository and its manifest, as every published model does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from loader import hub
from loader.estimate import TIMES_FILE, ExportTimes
from loader.jobs import Job, Loader
from loader.settings import LoaderSettings
from triton_steps.contract import ExportState


def _describe(job: Job) -> dict[str, Any]:
    body: dict[str, Any] = {"model_id": job.model_id, "name": job.name, "state": job.state}
    if job.state == ExportState.EXPORTED:
        return body
    if job.error:
        return body | {"error": job.error, "status": job.status}
    return body | {"estimated_time": round(job.remaining_s(), 1)}


class LoaderMetrics:
    """The loader's Prometheus metrics (its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.exports = Counter(
            "loader_exports", "On-demand exports finished, by outcome", ["outcome"], registry=self.registry
        )
        for outcome in (ExportState.EXPORTED, ExportState.FAILED):
            self.exports.labels(outcome)
        self.seconds = Histogram(
            "loader_export_seconds",
            "Seconds per export, download included",
            buckets=(5, 10, 20, 40, 60, 90, 120, 180, 300, 600, 1200),
            registry=self.registry,
        )
        self.queue = Gauge("loader_queue", "Exports waiting for a slot", registry=self.registry)

    def finished(self, outcome: str, seconds: float) -> None:
        self.exports.labels(outcome).inc()
        self.seconds.observe(seconds)


def create_app(settings: LoaderSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = LoaderMetrics()
        loader = Loader(settings, ExportTimes.kept_in(settings.state_dir / TIMES_FILE), metrics.finished)
        metrics.queue.set_function(loader.queued)
        app.state.loader, app.state.metrics = loader, metrics
        yield

    app = FastAPI(title="hf-audio-triton loader", lifespan=lifespan)

    @app.post("/load/{model_id:path}")
    async def load(model_id: str, request: Request) -> JSONResponse:
        try:
            job = await request.app.state.loader.request(model_id)
        except hub.Refusal as refusal:
            return JSONResponse({"error": refusal.message}, status_code=refusal.status)
        return JSONResponse(_describe(job), status_code=200 if job.state == ExportState.EXPORTED else 202)

    @app.get("/jobs")
    async def jobs(request: Request) -> list[dict[str, Any]]:
        return [_describe(job) for job in request.app.state.loader.jobs.values()]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
