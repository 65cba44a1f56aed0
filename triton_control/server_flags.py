"""tritonserver's command-line flags that follow the project's settings, for every launcher: ``make serve``
(``local_triton``) passes them itself; compose and Kubernetes start Triton through
``python -m triton_control trace-flags`` in a shell (and ``steps-env`` for its environment: ``triton_steps.blas``)."""

from __future__ import annotations

TRACE_SERVICE_NAME = "hf-audio-triton-triton"
# OpenTelemetry's own variables for where traces go, the traces-only one first: the gateway reads the same.
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def opentelemetry_flags(environ: dict[str, str]) -> list[str]:
    """tritonserver's flags for OpenTelemetry traces, from OpenTelemetry's own variables (the gateway reads the
    same ones, so one setting traces both): none unless ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set. Triton exports OTLP/HTTP (JSON) and continues the ``traceparent``
    the gateway sends; ``TRITON_TRACE_RATE`` traces one request in N (default 1: every request, as the
    gateway's default sampler does)."""
    traces_only, base = (environ.get(name, "") for name in ENDPOINT_VARIABLES)
    endpoint = traces_only or (f"{base.rstrip('/')}/v1/traces" if base else "")
    if not endpoint:
        return []
    rate = environ.get("TRITON_TRACE_RATE", "1")
    if not rate.isdigit() or int(rate) < 1:
        raise ValueError(f"TRITON_TRACE_RATE must be a whole number >= 1 (one request in N), not {rate!r}")
    return [
        "--trace-config=mode=opentelemetry",
        f"--trace-config=opentelemetry,url={endpoint}",
        f"--trace-config=opentelemetry,resource=service.name={TRACE_SERVICE_NAME}",
        f"--trace-config=rate={rate}",
        "--trace-config=level=TIMESTAMPS",
    ]
