"""tritonserver's OpenTelemetry flags come from the variables the gateway reads (one setting traces both), for
``make serve`` and, through ``python -m triton_control trace-flags``, for compose and Kubernetes."""

from __future__ import annotations

import pytest

from triton_control.__main__ import main
from triton_control.server_flags import opentelemetry_flags


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
    with pytest.raises(ValueError, match="TRITON_TRACE_RATE"):
        opentelemetry_flags({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "TRITON_TRACE_RATE": rate})


def test_the_command_prints_the_flags_for_a_shell_or_refuses(monkeypatch, capsys) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert main(["trace-flags"]) == 0 and capsys.readouterr().out == "\n"  # nothing set: no flags, Triton as ever
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("TRITON_TRACE_RATE", "10")
    assert main(["trace-flags"]) == 0
    assert capsys.readouterr().out.split() == opentelemetry_flags(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "TRITON_TRACE_RATE": "10"}
    )
    monkeypatch.setenv("TRITON_TRACE_RATE", "0")
    with pytest.raises(SystemExit) as stopped:
        main(["trace-flags"])
    assert stopped.value.code == 2 and "TRITON_TRACE_RATE" in capsys.readouterr().err
