"""Back-pressure: the permits a request or stream must hold, and the map of every overload protection.

The permits are context managers (released by scope, whatever happens) and the one count of what they
admit: the ``gateway_in_flight`` and ``gateway_streams`` gauges follow them. Beyond a cap a request is
refused at once (``Overloaded``: 503 + Retry-After, as text-embeddings-inference refuses beyond its concurrency
cap) rather than queued without bound: memory stays bounded, and clients that retry spread themselves out.
A live stream's window is the exception: its stream was admitted already and has at most that one window in
flight (so the waiting is bounded by ``MAX_STREAMS``), and refusing it would end the stream, so it waits in
line for a classification slot, up to ``GATEWAY_STREAM_MAX_LAG_S``, the lag at which the stream is ended anyway.

Every protection, outermost first (the layer that enforces it; its setting):

==========================  =============================================  ========================================
what                        where                                          setting (``GATEWAY_``)
==========================  =============================================  ========================================
open connections            ``http_server.GatewayProtocol`` (503; idle     ``MAX_CONNECTIONS``
                            ones shed first; probes always answered)
request headers' arrival    ``http_server.GatewayProtocol`` (408)          ``HEADER_TIMEOUT_S``
request line length         ``http_server.GatewayProtocol`` (414)          16 KiB
shutting down               ``drain.DrainGuard`` (503, ``/health`` kept)   ``DRAIN_S``
body size                   ``request_body.read_limited`` (413)            ``MAX_BODY_BYTES``
body bytes held, all reqs   ``Admission.body_bytes`` (503)                 ``MAX_INFLIGHT_BODY_BYTES``
body rate and time          ``request_body.read_limited``, ``classify``    ``BODY_MIN_RATE``, ``BODY_GRACE_S``,
                            (408)                                          ``BODY_TIMEOUT_S``
JSON size and shape         ``request_body.parse`` (400)                   100 separators
classify in progress        ``Admission.request`` (503), taken once the    ``MAX_CONCURRENT_REQUESTS``
                            body is in: a slow upload holds bytes, no slot;
                            a stream's window waits for one instead
heavy decodes               ``Admission.lane`` (wait; 504 past timeout)    ``MAX_HEAVY_REQUESTS``
inference time              ``inference.Inference`` (504)                  ``TIMEOUT_S``
live streams                ``Admission.stream`` (1013)                    ``MAX_STREAMS``
stream messages             ``streaming`` (size 1009, idle 1008)           ``STREAM_MAX_MESSAGE_BYTES``,
                                                                           ``STREAM_IDLE_S``
on-demand models loaded     ``on_demand.OnDemand`` (LRU eviction)          ``MAX_LOADED_MODELS``
==========================  =============================================  ========================================
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import Gauge

from gateway.errors import Overloaded, Timeout

Reserve = Callable[[int], None]  # holds more body bytes against the in-flight budget, or refuses (Overloaded)


@dataclass
class Slots:
    """A capped count of things in progress (classifications, streams), and the gauge that shows it. At the
    cap, one is refused at once, or waits in line (first come, first served) for as long as it is given."""

    cap: int
    what: str  # in the refusal: "the gateway is at its limit of <cap> <what>"
    gauge: Gauge
    held: int = 0
    _free: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._free = asyncio.Semaphore(self.cap)

    @contextlib.asynccontextmanager
    async def take(self, wait_s: float = 0.0) -> AsyncIterator[None]:
        """One slot for the scope: at once if one is free and no one waits for one (then it never suspends),
        else after waiting in line up to ``wait_s``; ``Overloaded`` past it."""
        if not self._free.locked():
            await self._free.acquire()
        elif wait_s <= 0:
            raise Overloaded(f"the gateway is at its limit of {self.cap} {self.what}")
        else:
            try:
                await asyncio.wait_for(self._free.acquire(), wait_s)
            except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10's is not the builtin
                raise Overloaded(
                    f"the gateway is at its limit of {self.cap} {self.what} (waited {wait_s:g} s)"
                ) from None
        self.held += 1
        self.gauge.inc()
        try:
            yield
        finally:
            self.held -= 1
            self.gauge.dec()
            self._free.release()


@dataclass
class Admission:
    requests: Slots
    streams: Slots
    max_body_bytes: int
    max_heavy: int
    body_bytes: int = 0
    # Requests heavy to decode (gateway.decode_cost) go to Triton this many at a time, the others waiting
    # here (each within its own timeout), so Triton's remaining preprocess instances serve light requests.
    heavy: asyncio.Semaphore = field(init=False)
    # Large bodies are parsed one at a time: a JSON body's text, its base64 and its audio take 3-4x its size
    # while it is parsed, and ten 25 MB bodies parsed at once took the gateway past 700 MB.
    large_parse: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.heavy = asyncio.Semaphore(self.max_heavy)

    def request(self, wait_s: float = 0.0) -> contextlib.AbstractAsyncContextManager[None]:
        """One classification's slot, waiting up to ``wait_s`` for one at the cap; else ``Overloaded``."""
        return self.requests.take(wait_s)

    def stream(self) -> contextlib.AbstractAsyncContextManager[None]:
        """One live-audio stream's slot, or ``Overloaded`` (the stream is closed with 1013)."""
        return self.streams.take()

    @contextlib.contextmanager
    def body(self) -> Iterator[Reserve]:
        """A body's share of the in-flight byte budget: ``reserve(n)`` holds ``n`` more bytes (or raises
        ``Overloaded``); all of them are given back when the scope ends."""
        held = 0

        def reserve(size: int) -> None:
            nonlocal held
            if self.body_bytes + size > self.max_body_bytes:
                raise Overloaded("the gateway holds its limit of request bodies in progress; retry shortly")
            self.body_bytes += size
            held += size

        try:
            yield reserve
        finally:
            self.body_bytes -= held

    @contextlib.asynccontextmanager
    async def lane(self, heavy: bool, timeout_s: float) -> AsyncIterator[None]:
        """Hold the heavy lane for a heavy request (waiting up to ``timeout_s``: ``Timeout`` past it); nothing
        for a light one."""
        if not heavy:
            yield
            return
        try:
            await asyncio.wait_for(self.heavy.acquire(), timeout_s)
        except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10's is not the builtin
            raise Timeout(f"timed out after waiting {timeout_s:g} s behind other heavy requests") from None
        try:
            yield
        finally:
            self.heavy.release()
