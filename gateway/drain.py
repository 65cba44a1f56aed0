"""Graceful shutdown: SIGTERM drains the gateway before uvicorn stops it.

uvicorn alone stops listening on SIGTERM: new requests meet a refused connection (which a load balancer may
count against the pod, and a client may not retry), and nothing tells the load balancer first. With
``Drain``, SIGTERM instead makes ``/ready`` answer 503 at once, answers every new request 503 +
``Retry-After`` + ``Connection: close`` (the client's retry opens a connection to another replica),
lets the requests already in flight finish (slow uploads included) for up to ``GATEWAY_DRAIN_S``, and only
then hands the signal to uvicorn, which shuts down as before. ``/health`` stays 200 meanwhile: the process is
alive, and a liveness probe must not kill it mid-drain. A second SIGTERM stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from typing import Any

from gateway.errors import error_response

log = logging.getLogger("gateway.drain")
LIVENESS_PATH = "/health"  # answered normally during the drain
POLL_S = 0.05


class Drain:
    """Whether the gateway is draining, and the requests in flight (counted by ``DrainGuard``)."""

    def __init__(self, timeout_s: float, retry_after_s: int) -> None:
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.draining = False
        self.in_flight = 0

    def install(self) -> None:
        """Take over SIGTERM (in the serving process's main thread, once its server has installed its own
        handlers): the first one drains, then re-raises it for the server's handler. Outside the main thread
        (an app run in a test client's thread) signals cannot be handled: nothing is installed."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None:  # installed from outside Python: the default action is the closest
            previous = signal.SIG_DFL

        def on_sigterm(sig: int, frame: object) -> None:
            if self.draining:  # a second SIGTERM: stop now
                _hand_over(previous)
                return
            loop.call_soon_threadsafe(lambda: loop.create_task(self._drain_then(previous)))

        signal.signal(signal.SIGTERM, on_sigterm)

    async def _drain_then(self, previous: Any) -> None:
        self.draining = True
        started = time.monotonic()
        log.info("SIGTERM: draining %d request(s) in flight (up to %.0f s)", self.in_flight, self.timeout_s)
        while self.in_flight and time.monotonic() - started < self.timeout_s:
            await asyncio.sleep(POLL_S)
        if self.in_flight:
            log.warning("drain timeout: stopping with %d request(s) still in flight", self.in_flight)
        else:
            log.info("drained in %.1f s", time.monotonic() - started)
        _hand_over(previous)


def _hand_over(previous: Any) -> None:
    """Give SIGTERM back to the handler that was there before (uvicorn's) and deliver it."""
    signal.signal(signal.SIGTERM, previous)
    signal.raise_signal(signal.SIGTERM)


class DrainGuard:
    """ASGI middleware: counts each request in flight; once draining, refuses new ones (not ``/health``)."""

    def __init__(self, app: Any, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.drain.draining and scope["path"] != LIVENESS_PATH:
            if scope["type"] == "websocket":  # refused before the handshake completes (HTTP 403 to the client)
                await send({"type": "websocket.close", "code": 1001})
                return
            answer = error_response(503, "the gateway is shutting down; retry", self.drain.retry_after_s)
            answer.headers["connection"] = "close"
            await answer(scope, receive, send)
            return
        self.drain.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.in_flight -= 1
