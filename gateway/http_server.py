"""Running the app: uvicorn, with the limits a public HTTP server needs, and optionally several workers.

uvicorn bounds idle keep-alive connections, but not the time a client may take to send its request headers:
a client trickling one byte a second holds its connection forever, and enough of them lock everyone out.
``GatewayProtocol`` closes a connection whose request headers are not complete ``GATEWAY_HEADER_TIMEOUT_S``
after it opened or after its previous answer, and answers requests beyond ``GATEWAY_MAX_CONNECTIONS`` open
connections with 503 + Retry-After in the gateway's JSON (uvicorn's own ``limit_concurrency`` answers plain
text, without Retry-After, and logs a warning per refusal); a request that is not valid HTTP also gets its
400 in JSON. Connections cannot lock everyone out: once open connections pass 90% of the cap, and before a
request over the cap is refused, idle ones (no request in progress) are closed, longest idle first, down to
75%; and the probes (``/health``, ``/ready``) are answered whatever the count, so a flood never makes a
liveness probe kill a healthy pod.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import error_response
from gateway.logs import log_config
from gateway.settings import Settings, from_environment

PROBE_PATHS = (b"/health", b"/ready")  # answered beyond the connection cap
IDLE_SHED_ABOVE, IDLE_SHED_TO = 0.90, 0.75  # fractions of the connection cap
# A connection is shed only once idle this long: one just accepted has usually sent its request already, and
# the event loop accepts a burst of connections before it reads any of their bytes.
MIN_IDLE_S = 0.1
WS_MAX_QUEUE = 1  # messages of a stream buffered beyond the one it reads
MAX_REQUEST_LINE = 16 * 1024  # bytes of method, path and query string; longer is a 414 (h11's default limit)
_TIMEOUT_BODY = b'{"error": "the request headers did not arrive in time"}'
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    settings = from_environment()
    answer = error_response(
        503, f"the gateway is at its limit of {settings.max_connections} connections", settings.retry_after_s
    )
    answer.headers["connection"] = "close"
    await answer(scope, receive, send)


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline for each request's headers (408, then closed) and a
    connection cap answered in JSON."""

    _header_timer: asyncio.TimerHandle | None = None
    _partial = False  # bytes of a request arrived, its headers not complete yet
    _line_bytes = 0  # bytes of the current request line received so far
    _line_done = False  # the current request line is complete
    _idle_since = 0.0  # when it last became idle (connected, or answered)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._arm()
        cap = from_environment().max_connections
        if len(self.connections) > cap * IDLE_SHED_ABOVE:
            self._shed_idle(int(cap * IDLE_SHED_TO))

    def _shed_idle(self, keep: int) -> int:
        """Close connections idle for ``MIN_IDLE_S`` or more (this one aside), longest idle first, until at most
        ``keep`` are open; the connections still open."""
        open_now = [c for c in self.connections if not c.transport.is_closing()]
        oldest = self.loop.time() - MIN_IDLE_S
        idle = [c for c in open_now if c is not self and isinstance(c, GatewayProtocol) and c._idle(oldest)]
        idle.sort(key=lambda connection: connection._idle_since)
        shed = idle[: max(0, len(open_now) - keep)]
        for connection in shed:
            connection.transport.close()  # it leaves self.connections a moment later (connection_lost)
        return len(open_now) - len(shed)

    def _idle(self, since: float) -> bool:
        """No request in progress, and none since ``since`` (the loop's clock)."""
        return self._awaiting_headers() and not self._partial and self._idle_since <= since

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers():
            self._partial = True
            if not self._line_done:
                end = data.find(b"\n")
                self._line_done = end >= 0
                self._line_bytes += len(data) if end < 0 else end
                if self._line_bytes > MAX_REQUEST_LINE:
                    self._refuse(414, f"the path and query string are longer than {MAX_REQUEST_LINE} bytes")
                    return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._partial = False
        self._line_bytes, self._line_done = 0, False
        self._disarm()
        cap = from_environment().max_connections
        probe = self.url.split(b"?", 1)[0] in PROBE_PATHS
        connections = len(self.connections)
        if connections > cap and not probe:  # idle ones make room before a request is refused
            connections = self._shed_idle(int(cap * IDLE_SHED_TO))
        if probe or (connections <= cap and len(self.tasks) < cap):
            super().on_headers_complete()
            return
        self.app, app = _over_capacity, self.app  # the app this one request runs
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def send_400_response(self, msg: str) -> None:
        # A request httptools cannot parse (a raw NUL or non-ASCII byte in the path, a broken request line):
        # uvicorn answers it in plain text; the gateway's clients read JSON errors.
        self._refuse(400, f"the request is not valid HTTP: {msg}")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with the gateway's JSON error before any app runs, and close."""
        body = json.dumps({"error": message}).encode()
        reason = HTTPStatus(status).phrase.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(from_environment().header_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._awaiting_headers():
            return
        if self._partial:  # an idle keep-alive connection is just closed; a half-sent request is told why
            self.transport.write(_TIMEOUT_ANSWER)
        self.transport.close()


def serve(settings: Settings) -> None:
    """Serve ``gateway.app:create_app`` on ``settings.host:settings.port`` until stopped."""
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Each worker writes its metrics here; /metrics (in any worker) sums them (gateway.metrics).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-metrics-")
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http=f"{__name__}:{GatewayProtocol.__name__}",
        log_level="info",
        log_config=log_config(settings.log_level, settings.log_format),
        access_log=False,
        timeout_keep_alive=settings.keep_alive_s,
        # Messages up to twice a stream's limit get the gateway's JSON error; beyond, uvicorn closes with 1009.
        ws_max_size=2 * settings.stream_max_message_bytes,
        # A stream reads one message at a time: one more may wait in its buffer (websockets' default holds 32,
        # which let a flooding client park 32 MiB in the gateway), the rest waits in TCP.
        ws_max_queue=WS_MAX_QUEUE,
    )
