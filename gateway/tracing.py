"""OpenTelemetry traces of each request, sent over OTLP/HTTP: off unless an OTLP endpoint is configured.

Configuration is OpenTelemetry's own environment variables, so any collector's instructions apply as written:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns tracing on,
``OTEL_SERVICE_NAME`` names the service (default ``hf-audio-triton-gateway``), ``OTEL_TRACES_SAMPLER`` samples.
A request's span continues the client's ``traceparent`` and carries its request id; its children time the
body, the parsing and the Triton inference, and the inference passes ``traceparent`` on to Triton in its gRPC
metadata, where Triton continues the same trace (``triton_control.server_flags``, from the same variables).
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from triton_control.server_flags import ENDPOINT_VARIABLES

DEFAULT_SERVICE_NAME = "hf-audio-triton-gateway"


class Tracing:
    """The app's tracer: a real one exporting over OTLP when configured, else one that records nothing."""

    def __init__(self) -> None:
        self.provider: TracerProvider | None = None
        if any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            name = os.environ.get("OTEL_SERVICE_NAME", DEFAULT_SERVICE_NAME)
            self.provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer: Tracer = self.provider.get_tracer("gateway") if self.provider else trace.NoOpTracer()

    def shutdown(self) -> None:
        """Send what is buffered (at the app's end)."""
        if self.provider is not None:
            self.provider.shutdown()


def outgoing_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, for a call to Triton; empty without one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


class TraceRequests:
    """ASGI middleware: one SERVER span per HTTP request, continuing the client's ``traceparent``."""

    def __init__(self, app: Any, tracing: Tracing) -> None:
        self.app = app
        self.tracer = tracing.tracer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or isinstance(self.tracer, trace.NoOpTracer):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        name = f"{scope['method']} {scope['path']}"
        with self.tracer.start_as_current_span(name, context=propagate.extract(headers), kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", scope["method"])
            span.set_attribute("url.path", scope["path"])
            span.set_attribute("request.id", scope.get("state", {}).get("request_id", ""))

            async def send_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, send_status)
            model = scope.get("state", {}).get("model")
            if model:
                span.set_attribute("model", model)
