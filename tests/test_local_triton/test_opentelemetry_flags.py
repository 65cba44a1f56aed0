"""tritonserver's OpenTelemetry flags come from the variables the gateway reads (one setting traces both)."""

from __future__ import annotations

import pytest

from local_triton.server import TritonStartError, opentelemetry_flags


def test_no_endpoint_no_tracing() -> None:
    assert opentelemetry_flags({}) == [] and opentelemetry_flags({"TRITON_TRACE_RATE": "5"}) == []


def test_the_traces_endpoint_wins_and_the_base_endpoint_gets_the_otlp_path() -> None:
    flags = opentelemetry_flags({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert "--trace-config=mode=opentelemetry" in flags and "--trace-config=rate=1" in flags
    assert "--trace-config=opentelemetry,url=http://collector:4318/v1/traces" in flags
    both = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b/t"}
    assert "--trace-config=opentelemetry,url=http://b/t" in opentelemetry_flags(both)


@pytest.mark.parametrize("rate", ["0", "-1", "half", ""])
def test_a_bad_rate_is_refused_before_triton_starts(rate: str) -> None:
    with pytest.raises(TritonStartError, match="TRITON_TRACE_RATE"):
        opentelemetry_flags({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "TRITON_TRACE_RATE": rate})
