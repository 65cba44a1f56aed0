"""Back-pressure: how many classify requests, body bytes and live-audio streams the gateway holds at once.

Beyond either cap a request is refused at once with 503 + Retry-After (as text-embeddings-inference refuses
beyond its concurrency cap) rather than queued without bound: memory stays bounded under a flood of large
uploads, and clients that retry spread themselves out. A request takes its classify slot only once its body
is in: a client sending its body slowly holds the bytes it sent (``reserve``), never a slot, so slow uploads
cannot lock out the others (they are bounded by the body's minimum rate and timeout instead).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gateway.errors import GatewayError


@dataclass
class Admission:
    max_requests: int
    max_body_bytes: int
    max_streams: int
    max_heavy: int = 1
    requests: int = 0
    body_bytes: int = 0
    streams: int = 0
    # Requests heavy to decode (gateway.decode_cost) go to Triton this many at a time, the others waiting
    # here (each within its own timeout), so Triton's remaining preprocess instances serve light requests.
    heavy: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.heavy = asyncio.Semaphore(self.max_heavy)

    def enter(self) -> None:
        """Admit one more classify request, or refuse it (503)."""
        if self.requests >= self.max_requests:
            raise GatewayError(503, f"the gateway is at its limit of {self.max_requests} requests in progress")
        self.requests += 1

    def leave(self) -> None:
        self.requests -= 1

    def reserve(self, size: int) -> None:
        """Hold ``size`` more body bytes for a request being read, or refuse it (503)."""
        if self.body_bytes + size > self.max_body_bytes:
            raise GatewayError(503, "the gateway holds its limit of request bodies in progress; retry shortly")
        self.body_bytes += size

    def release(self, size: int) -> None:
        """Give back ``size`` body bytes reserved earlier."""
        self.body_bytes -= size

    @contextlib.asynccontextmanager
    async def lane(self, heavy: bool, timeout_s: float) -> AsyncIterator[None]:
        """Hold the heavy lane for a heavy request (waiting up to ``timeout_s``: 504 past it); nothing for a
        light one."""
        if not heavy:
            yield
            return
        try:
            await asyncio.wait_for(self.heavy.acquire(), timeout_s)
        except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10's is not the builtin
            raise GatewayError(504, f"timed out after waiting {timeout_s:g} s behind other heavy requests") from None
        try:
            yield
        finally:
            self.heavy.release()

    def enter_stream(self) -> None:
        """Admit one more live-audio stream, or refuse it (503: the stream is closed with 1013)."""
        if self.streams >= self.max_streams:
            raise GatewayError(503, f"the gateway is at its limit of {self.max_streams} streams")
        self.streams += 1

    def leave_stream(self) -> None:
        self.streams -= 1
