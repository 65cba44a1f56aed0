"""OpenTelemetry traces from a real gateway process, and a real tritonserver, to a real OTLP/HTTP receiver: one
request is one span tree that continues the client's ``traceparent``, carries the request id, and goes on
inside Triton (its request, the ensemble and each step)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, Ports, free_port
from triton_control.server_flags import TRACE_SERVICE_NAME
from triton_steps import contract

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    """An OTLP/HTTP endpoint collecting every span it is sent, as (service name, span): protobuf (the gateway's
    exporter) or JSON (Triton's)."""
    spans: list[tuple[str, Span]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                json_format.Parse(body, request, ignore_unknown_fields=True)  # ids: hex in OTLP/JSON, base64 here
                _ids_from_hex(json.loads(body), request)
            else:
                request.ParseFromString(body)
            for resource in request.resource_spans:
                service = {a.key: a.value.string_value for a in resource.resource.attributes}.get("service.name", "")
                for scope in resource.scope_spans:
                    spans.extend((service, span) for span in scope.spans)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()


def _ids_from_hex(document: dict, request: ExportTraceServiceRequest) -> None:
    """OTLP/JSON writes trace and span ids as hex, which protobuf's JSON parser reads as base64: set them."""
    for resource, parsed_resource in zip(document["resourceSpans"], request.resource_spans, strict=True):
        for scope, parsed_scope in zip(resource["scopeSpans"], parsed_resource.scope_spans, strict=True):
            for span, parsed in zip(scope["spans"], parsed_scope.spans, strict=True):
                parsed.trace_id = bytes.fromhex(span["traceId"])
                parsed.span_id = bytes.fromhex(span["spanId"])
                parsed.parent_span_id = bytes.fromhex(span.get("parentSpanId", ""))


def _wait_for(
    spans: list[tuple[str, Span]], names: set[str], timeout: float = 30, trace_id: str = TRACE_ID
) -> dict[str, Span]:
    """The spans of the test's trace, by name, once every one of ``names`` has arrived."""
    deadline = time.monotonic() + timeout
    while True:
        ours = {span.name: span for _, span in list(spans) if span.trace_id.hex() == trace_id}
        if names <= set(ours):
            return ours
        if time.monotonic() > deadline:  # what did arrive, in which trace, says which side lost the trace
            others = sorted((s.trace_id.hex(), service, s.name) for service, s in spans if s.trace_id.hex() != trace_id)
            raise AssertionError(f"missing {names - set(ours)}; got {sorted(ours)}; other traces: {others}")
        time.sleep(0.1)


def test_one_request_is_one_span_tree_under_the_clients_trace(
    default_served: tuple[LocalTriton, str], receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    triton, _ = default_served
    endpoint, spans = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: export soon after each request
    with GatewayProcess(triton.grpc_url, free_port(), tmp_path / "gateway.log") as gateway:
        answer = httpx.post(
            f"{gateway.url}/",
            content=(ROOT / "samples" / "yes.wav").read_bytes(),
            headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01", "x-request-id": "trace-me-1"},
        )
        assert answer.status_code == 200
        ours = _wait_for(spans, {"POST /", "read body", "parse", "triton infer"})
    server = ours["POST /"]
    assert server.parent_span_id.hex() == CLIENT_SPAN_ID  # it continues the client's trace
    for child in ("read body", "parse", "triton infer"):
        assert ours[child].parent_span_id == server.span_id
    attributes = {a.key: a.value for a in server.attributes}
    assert attributes["request.id"].string_value == "trace-me-1"  # the id in the logs and Triton's request
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["model"].string_value == "keyword-spotter"
    infer = {a.key: a.value for a in ours["triton infer"].attributes}
    assert infer["model"].string_value == "keyword-spotter"
    assert ours["triton infer"].end_time_unix_nano > ours["triton infer"].start_time_unix_nano


def test_the_trace_goes_on_inside_triton_with_the_request_id(receiver, tmp_path: Path, monkeypatch) -> None:
    """One variable traces both: ``make serve``'s Triton (local_triton) gets OpenTelemetry flags from it."""
    endpoint, spans = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    model = contract.StepNames("keyword-spotter")
    ports = Ports(free_port(), free_port(), free_port())
    with (
        LocalTriton(ROOT / "model_repository", tmp_path / "triton", ports) as triton,
        GatewayProcess(triton.grpc_url, free_port(), tmp_path / "gateway.log") as gateway,
    ):
        # Under CPU load, tritonserver 2.51 sometimes begins a new trace of its own for a request (its spans
        # complete, under another trace id): seen for the first request after its start in 2 of 9 runs, and once
        # (in a CI run beside other load) for the second. So: a request before, and up to three traced requests,
        # each with its own trace id; one must be continued inside Triton, and each is reported.
        assert httpx.post(f"{gateway.url}/", content=(ROOT / "samples" / "yes.wav").read_bytes()).status_code == 200
        lost = []
        for attempt in range(3):
            trace_id = f"{TRACE_ID[:-1]}{attempt}"
            answer = httpx.post(
                f"{gateway.url}/",
                content=(ROOT / "samples" / "yes.wav").read_bytes(),
                headers={"traceparent": f"00-{trace_id}-{CLIENT_SPAN_ID}-01", "x-request-id": "follow-me-7"},
            )
            assert answer.status_code == 200
            try:
                ours = _wait_for(spans, {"triton infer", "InferRequest", *model.all()}, 15, trace_id)
                break
            except AssertionError as error:
                lost.append(str(error))
        else:  # an exporter's failure is in Triton's log
            raise AssertionError("\n".join(lost) + f"\ntritonserver's log:\n{triton.log_tail()}")
    print(f"traced requests Triton began its own trace for: {len(lost)} of {len(lost) + 1}")
    services = {span.name: service for service, span in spans if span.trace_id.hex() == trace_id}
    assert services["POST /"] != services["InferRequest"] == TRACE_SERVICE_NAME
    assert ours["InferRequest"].parent_span_id == ours["triton infer"].span_id  # the gateway's call is its parent
    for name in model.all():  # the ensemble and each of its steps, each with the client's request id
        attributes = {a.key: a.value.string_value for a in ours[name].attributes}
        assert attributes["triton.request_id"] == "follow-me-7", (name, attributes)
