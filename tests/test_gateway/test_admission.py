"""The permits: released by scope whatever happens, refused beyond their caps, and the gauges that follow them."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Gauge

from gateway.admission import Admission, Slots
from gateway.errors import Overloaded, Timeout


def _admission(requests: int = 2, body_bytes: int = 100, streams: int = 1, heavy: int = 1) -> Admission:
    registry = CollectorRegistry()
    return Admission(
        Slots(requests, "requests in progress", Gauge("in_flight", "", registry=registry)),
        Slots(streams, "streams", Gauge("streams", "", registry=registry)),
        body_bytes,
        heavy,
    )


def _gauge(gauge: Gauge) -> float:
    return gauge._value.get()


def test_request_permits_are_counted_refused_beyond_the_cap_and_released() -> None:
    async def run() -> None:
        admission = _admission(requests=2)
        async with admission.request(), admission.request():
            assert admission.requests.held == 2 and _gauge(admission.requests.gauge) == 2
            with pytest.raises(Overloaded, match="limit of 2 requests"):
                async with admission.request():
                    pass
        assert admission.requests.held == 0 and _gauge(admission.requests.gauge) == 0

    asyncio.run(run())


def test_a_permit_is_released_when_its_request_fails() -> None:
    async def run() -> None:
        admission = _admission()
        with pytest.raises(ValueError):
            async with admission.request():
                raise ValueError("boom")
        assert admission.requests.held == 0

    asyncio.run(run())


def test_at_the_cap_a_waiting_request_gets_the_next_slot_in_line_and_others_are_refused() -> None:
    """A stream's window waits for a slot (gateway.streaming); a POST is refused at once, also while a window
    waits (it does not jump the line); waiters are served first come, first served; past its wait, refused."""

    async def run() -> None:
        admission = _admission(requests=1)
        order: list[str] = []

        async def waiter(name: str, wait_s: float) -> None:
            async with admission.request(wait_s):
                order.append(name)
                await asyncio.sleep(0.01)

        async with admission.request():
            first = asyncio.create_task(waiter("first", 5.0))
            second = asyncio.create_task(waiter("second", 5.0))
            await asyncio.sleep(0.01)  # both in line
            with pytest.raises(Overloaded, match="limit of 1 requests"):
                async with admission.request():
                    pass
            with pytest.raises(Overloaded, match=r"waited 0.02 s"):
                async with admission.request(0.02):
                    pass
            assert order == []
        await asyncio.gather(first, second)
        assert order == ["first", "second"]
        assert admission.requests.held == 0 and _gauge(admission.requests.gauge) == 0

    asyncio.run(run())


def test_a_request_cancelled_while_in_line_takes_no_slot() -> None:
    """A stream that ends (its client gone) while its window waits: nothing held afterwards."""

    async def run() -> None:
        admission = _admission(requests=1)

        async def waiter() -> None:
            async with admission.request(5.0):
                pytest.fail("a cancelled waiter must not run")

        async with admission.request():
            task = asyncio.create_task(waiter())
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert admission.requests.held == 0
        async with admission.request():  # the slot is free again, at once
            assert admission.requests.held == 1

    asyncio.run(run())


def test_body_bytes_are_reserved_refused_beyond_the_budget_and_all_given_back() -> None:
    admission = _admission(body_bytes=100)
    with admission.body() as first, admission.body() as second:
        first(60)
        second(30)
        with pytest.raises(Overloaded, match="request bodies"):
            second(11)
        assert admission.body_bytes == 90
    assert admission.body_bytes == 0


def test_stream_permits_are_capped_and_gauged() -> None:
    async def run() -> None:
        admission = _admission(streams=1)
        async with admission.stream():
            assert _gauge(admission.streams.gauge) == 1
            with pytest.raises(Overloaded, match="limit of 1 streams"):
                async with admission.stream():
                    pass
        assert admission.streams.held == 0 and _gauge(admission.streams.gauge) == 0

    asyncio.run(run())


def test_the_heavy_lane_lets_one_through_and_times_out_the_next() -> None:
    async def run() -> None:
        admission = _admission(heavy=1)
        async with admission.lane(True, 1.0):
            async with admission.lane(False, 0.01):  # light requests never wait
                pass
            with pytest.raises(Timeout, match="behind other heavy requests"):
                async with admission.lane(True, 0.01):
                    pass
        async with admission.lane(True, 0.01):  # released
            pass

    asyncio.run(run())
