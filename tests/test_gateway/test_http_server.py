"""The gateway's HTTP server (``gateway.http_server``) on real sockets, a real gateway process and no Triton:
header limits (431), a 413 the client reads while still sending, idle keep-alive connections, HEAD probes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from fake_triton import FakeTriton, gateway_app, metadata
from helpers import free_port, running_gateway

MAX_BODY = 1_000_000


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, int]]:
    """A gateway with no Triton behind it (nothing here reaches Triton), 1 MB bodies, a 1 s header timeout."""
    with running_gateway(f"127.0.0.1:{free_port()}", max_body_bytes=str(MAX_BODY), header_timeout_s="1") as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def _answer(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer read from ``connection``: status, headers, body (by its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += connection.recv(65536)
    return int(lines[0].split()[1]), headers, body


def _nothing_more(connection: socket.socket, wait_s: float = 0.5) -> bool:
    """No further bytes (a second answer) arrive within ``wait_s``; the connection may be closed or open."""
    connection.settimeout(wait_s)
    try:
        return connection.recv(65536) == b""
    except TimeoutError:
        return True


def test_too_many_headers_are_431_in_json(gateway: tuple[str, int]) -> None:
    with socket.create_connection(gateway, timeout=10) as connection:
        headers = "".join(f"X-H{i}: {i}\r\n" for i in range(101))
        connection.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        status, answer_headers, body = _answer(connection)
    assert status == 431 and "more than 100 headers" in json.loads(body)["error"]
    assert answer_headers["content-type"] == "application/json"
    assert answer_headers["x-request-id"] == json.loads(body)["request_id"]  # every answer carries one


def test_headers_over_the_byte_limit_are_431_as_they_arrive(gateway: tuple[str, int]) -> None:
    with socket.create_connection(gateway, timeout=10) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000)  # and it goes on
        status, _, body = _answer(connection)
        assert connection.recv(1) == b""  # closed
    assert status == 431 and "over 16384 bytes" in json.loads(body)["error"]


def test_headers_within_the_limits_are_served(gateway: tuple[str, int]) -> None:
    with socket.create_connection(gateway, timeout=10) as connection:
        headers = "".join(f"X-H{i}: {'v' * 100}\r\n" for i in range(98))  # 98 + Host: within 100, about 11 KB
        connection.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        assert _answer(connection)[0] == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_413_read_by_a_client_still_sending(gateway: tuple[str, int], chunked: bool) -> None:
    """The client sends its whole 3 MB body (no reset midway), then reads the 413, the only answer."""
    body = bytes(3 * MAX_BODY)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    with socket.create_connection(gateway, timeout=10) as connection:
        connection.sendall(f"POST / HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode())
        for start in range(0, len(body), 65536):
            piece = body[start : start + 65536]
            connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            connection.sendall(b"0\r\n\r\n")
        status, _, answer = _answer(connection)
        assert status == 413 and "limit" in json.loads(answer)["error"]
        assert _nothing_more(connection)  # no second, unasked-for answer (it used to be a 414)


def test_an_idle_keep_alive_connection_outlives_the_header_timeout(gateway: tuple[str, int]) -> None:
    """Idle between requests, a connection is the keep-alive timeout's (75 s), not the header timeout's (1 s
    here): a client that reuses it after its own idle time never meets a connection the gateway is closing."""
    with socket.create_connection(gateway, timeout=10) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(connection)[0] == 200
        time.sleep(1.5)
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(connection)[0] == 200


def test_a_request_started_must_still_finish_its_headers_in_time(gateway: tuple[str, int]) -> None:
    with socket.create_connection(gateway, timeout=10) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(connection)[0] == 200
        connection.sendall(b"GET /health HTTP/1.1\r\n")  # and never the rest
        status, _, body = _answer(connection)
    assert status == 408 and "did not arrive in time" in json.loads(body)["error"]


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_head_probes_answer_without_a_body(path: str) -> None:
    with gateway_app(FakeTriton.serving(metadata())) as client:
        answer = client.head(path)
    assert answer.status_code == 200 and answer.content == b""
