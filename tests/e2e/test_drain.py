"""SIGTERM drains a real gateway process: readiness turns 503 at once, slow uploads already in flight finish
with 200, new requests get 503 + Connection: close, and the process exits once drained."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, free_port

ROOT = Path(__file__).resolve().parents[2]
CLIP = (ROOT / "samples" / "yes.wav").read_bytes()
UPLOADS = 6


def _start_upload(host: str, port: int) -> socket.socket:
    """A POST whose headers and first half of body are sent; the rest waits."""
    client = socket.create_connection((host, port))
    client.sendall(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: %d\r\n\r\n" % len(CLIP)
        + CLIP[: len(CLIP) // 2]
    )
    return client


def _finish_upload(client: socket.socket) -> str:
    client.sendall(CLIP[len(CLIP) // 2 :])
    client.settimeout(30)
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"]"):
        chunk = client.recv(65536)
        if not chunk:
            break
        answer += chunk
    client.close()
    return answer.decode()


@pytest.fixture
def gateway(default_served: tuple[LocalTriton, str], tmp_path: Path) -> GatewayProcess:
    triton, _ = default_served
    process = GatewayProcess(triton.grpc_url, free_port(), tmp_path / "gateway.log", drain_s="20").start()
    yield process
    process.stop()


def test_sigterm_drains_slow_uploads_and_refuses_new_requests_until_it_exits(gateway: GatewayProcess) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    assert httpx.get(f"{gateway.url}/ready").status_code == 200
    uploads = [_start_upload(host, int(port)) for _ in range(UPLOADS)]
    time.sleep(0.5)  # their headers are in: each request is in flight, waiting for its body

    gateway.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 2
    while (ready := httpx.get(f"{gateway.url}/ready")).status_code != 503:
        assert time.monotonic() < deadline, "readiness did not turn 503 after SIGTERM"
        time.sleep(0.05)
    assert "shutting down" in ready.json()["error"]
    refused = httpx.post(f"{gateway.url}/", content=CLIP)
    assert refused.status_code == 503 and refused.headers["connection"] == "close"
    assert refused.headers["retry-after"] and refused.headers["x-request-id"]
    assert httpx.get(f"{gateway.url}/health").status_code == 200  # alive: no liveness restart mid-drain
    assert gateway.running()

    answers = [_finish_upload(client) for client in uploads]
    for answer in answers:
        assert answer.startswith("HTTP/1.1 200"), answer[:300]
        assert '"label":"yes"' in answer.replace(" ", "")
    gateway.process.wait(10)  # drained: it exits without waiting for the drain timeout
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gateway.url}/health")
    assert "drained in" in gateway.log_tail()
