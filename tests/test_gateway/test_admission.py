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
    admission = _admission(requests=2)
    with admission.request(), admission.request():
        assert admission.requests.held == 2 and _gauge(admission.requests.gauge) == 2
        with pytest.raises(Overloaded, match="limit of 2 requests"), admission.request():
            pass
    assert admission.requests.held == 0 and _gauge(admission.requests.gauge) == 0


def test_a_permit_is_released_when_its_request_fails() -> None:
    admission = _admission()
    with pytest.raises(ValueError), admission.request():
        raise ValueError("boom")
    assert admission.requests.held == 0


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
    admission = _admission(streams=1)
    with admission.stream():
        assert _gauge(admission.streams.gauge) == 1
        with pytest.raises(Overloaded, match="limit of 1 streams"), admission.stream():
            pass
    assert admission.streams.held == 0 and _gauge(admission.streams.gauge) == 0


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
