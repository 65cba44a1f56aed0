"""OpenTelemetry traces from a real gateway process to a real OTLP/HTTP receiver: one request is one span tree
that continues the client's ``traceparent`` and carries the request id."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from local_triton.server import LocalTriton, free_port
from local_triton.services import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    """An OTLP/HTTP endpoint (protobuf, as the exporter sends it) collecting every span it is sent."""
    spans: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            request = ExportTraceServiceRequest()
            request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    spans.extend(scope.spans)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()


def test_one_request_is_one_span_tree_under_the_clients_trace(
    default_served: tuple[LocalTriton, str], receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    triton, _ = default_served
    endpoint, spans = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: export soon after each request
    with GatewayProcess(triton.grpc_url, free_port(), tmp_path / "gateway.log") as gateway:
        answer = httpx.post(
            f"{gateway.url}/", content=(ROOT / "samples" / "yes.wav").read_bytes(),
            headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01", "x-request-id": "trace-me-1"},
        )  # fmt: skip
        assert answer.status_code == 200
        deadline = time.monotonic() + 15
        while not any(span.name == "POST /" for span in spans):
            assert time.monotonic() < deadline, f"no server span exported; got {[s.name for s in spans]}"
            time.sleep(0.1)
    ours = {span.name: span for span in spans if span.trace_id.hex() == TRACE_ID}
    assert {"POST /", "read body", "parse", "triton infer"} <= set(ours), sorted(ours)
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
