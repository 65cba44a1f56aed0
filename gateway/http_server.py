"""Running the app: uvicorn, with the limits a public HTTP server needs, and optionally several workers.

uvicorn bounds idle keep-alive connections, but not the time a client may take to send its request headers:
a client trickling one byte a second holds its connection forever, and enough of them lock everyone out.
``GatewayProtocol`` closes a connection whose request headers are not complete ``GATEWAY_HEADER_TIMEOUT_S``
after it opened or after the request's first byte (an idle keep-alive connection is closed by uvicorn after
``GATEWAY_KEEP_ALIVE_S``); it refuses request lines over 16 KiB (414) and headers over
``GATEWAY_MAX_HEADER_BYTES`` or ``GATEWAY_MAX_HEADERS`` (431) as they arrive; it reads and drops the rest of a
body answered early (a 413), so that a client still sending reads the answer rather than a reset; and it answers
requests beyond ``GATEWAY_MAX_CONNECTIONS`` open connections with 503 + Retry-After in the gateway's JSON
(uvicorn's own ``limit_concurrency`` answers plain text, without Retry-After, and logs a warning per refusal);
a request that is not valid HTTP also gets its 400 in JSON. Connections cannot lock everyone out: once open
connections pass 90% of the cap, and before a request over the cap is refused, idle ones (no request in
progress) are closed, longest idle first, down to 75%; and the probes (``/health``, ``/ready``) are answered
whatever the count, so a flood never makes a liveness probe kill a healthy pod.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid
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
# The rest of a body the app answered without reading (a 413 from its Content-Length) is read and dropped up to
# this, so that a client still sending gets to read the answer; a larger one is cut off.
MAX_DISCARD_BYTES = 256 * 1024 * 1024
LINGER_S = 2.0  # after a refusal, the client's bytes are read and dropped this long before the close


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    settings = from_environment()
    answer = error_response(
        503, f"the gateway is at its limit of {settings.max_connections} connections", settings.retry_after_s
    )
    answer.headers["connection"] = "close"
    await answer(scope, receive, send)


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline for each request's headers (408, then closed), bounds on
    the request line (414) and headers (431), a bounded discard of the rest of a body answered early, and a
    connection cap answered in JSON."""

    _header_timer: asyncio.TimerHandle | None = None
    _partial = False  # bytes of a request arrived, its headers not complete yet
    _line_bytes = 0  # bytes of the current request line received so far
    _line_done = False  # the current request line is complete
    _head_bytes = 0  # bytes of the current request line and headers received so far
    _head_lines = 0  # newlines among them
    _tail = b""  # the last bytes of the previous chunk: an end of headers may straddle two chunks
    _in_message = False  # a request is arriving
    _draining = False  # the request arriving was answered already (a 413): the rest of its body is dropped
    _discarded = 0  # bytes of it dropped since its answer
    _idle_since = 0.0  # when it last became idle (connected, or answered)
    _refused = False  # answered by the protocol itself (400, 408, 414, 431): closing

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._arm(from_environment().header_timeout_s)  # a new connection must send its headers in time
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
        if self._refused:  # answered and closing: what still comes is dropped
            return
        if self._draining:
            # The rest of a body the app answered without reading (a 413): read and dropped, so that the client,
            # still sending, gets to read the answer instead of a reset; bounded.
            self._discarded += len(data)
            if self._discarded > MAX_DISCARD_BYTES:
                self.transport.close()
                return
        elif self._awaiting_headers() and not self._head_within_limits(data):
            return
        super().data_received(data)

    def _head_within_limits(self, data: bytes) -> bool:
        """Count a chunk of a request's line and headers; False once it was refused (414, 431)."""
        if not self._partial:  # the first byte of a request: its headers' deadline starts
            self._partial = True
            self._arm(from_environment().header_timeout_s)
        if not self._line_done:
            end = data.find(b"\n")
            self._line_done = end >= 0
            self._line_bytes += len(data) if end < 0 else end
            if self._line_bytes > MAX_REQUEST_LINE:
                self._refuse(414, f"the path and query string are longer than {MAX_REQUEST_LINE} bytes")
                return False
        head = self._head_part(data)
        self._head_bytes += len(head)
        self._head_lines += head.count(b"\n")
        settings = from_environment()
        if self._head_bytes > MAX_REQUEST_LINE + settings.max_header_bytes:
            self._refuse(431, f"the request headers are over {settings.max_header_bytes} bytes")
            return False
        if self._head_lines > settings.max_headers + 2:  # the request line, the headers, the blank line
            self._refuse(431, f"the request has more than {settings.max_headers} headers")
            return False
        return True

    def _head_part(self, data: bytes) -> bytes:
        """The part of ``data`` up to the end of the headers (all of it while they go on)."""
        joined = self._tail + data
        end = joined.find(b"\r\n\r\n")
        part = data if end < 0 else data[: max(0, end + 4 - len(self._tail))]
        self._tail = joined[-3:]
        return part

    def on_message_begin(self) -> None:
        self._in_message, self._draining, self._discarded = True, False, 0
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._in_message = self._draining = False
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        self._partial = False
        self._line_bytes, self._line_done, self._head_bytes, self._head_lines, self._tail = 0, False, 0, 0, b""
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
        """Answer ``status`` with the gateway's JSON error before any app runs, and close: a lingering close
        (our side shut, the client's bytes read and dropped for up to ``LINGER_S``), so that a client still
        sending reads the answer instead of a reset."""
        request_id = uuid.uuid4().hex  # no request was read, so none was given: a new one, as every answer has
        body = json.dumps({"error": message, "request_id": request_id}).encode()
        reason = HTTPStatus(status).phrase.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\nx-request-id: %s\r\n"
            b"content-length: %d\r\n\r\n%s" % (status, reason, request_id.encode(), len(body), body)
        )
        self._refused = True
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._disarm()
        self._header_timer = self.loop.call_later(LINGER_S, self.transport.close)

    def eof_received(self) -> bool | None:
        if self._refused:  # the client is done too: close now
            self.transport.close()
        return super().eof_received()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()
        self._draining = self._in_message  # answered before its body was all in
        if self._draining:  # the rest of the body must come within the body's own time limit
            self._arm(from_environment().body_timeout_s)
        else:  # idle until the next request's first byte: uvicorn's keep-alive timeout governs
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        answered = self.cycle is None or self.cycle.response_complete
        return answered and not self._draining and not self.pipeline

    def _arm(self, timeout_s: float) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._draining:  # an answered body still arriving after its time: enough
            self.transport.close()
        elif self._awaiting_headers():
            if self._partial:  # a connection that never sent a byte is just closed; a half-sent request is told
                self._refuse(408, "the request headers did not arrive in time")
            else:
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
