"""Prometheus metrics of one app instance (its own registry: no process-global state).

With several workers (``GATEWAY_WORKERS``, which sets ``PROMETHEUS_MULTIPROC_DIR``) each process writes its
values to files there, and ``/metrics``, whichever worker answers it, reports the sum over all of them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from gateway.errors import GatewayError

UNKNOWN_MODEL = "unknown"  # metrics are labelled by served models only: ids from clients are unbounded
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass
class Outcome:
    """What a classification's metrics, access line and answer headers learn as it goes, even when it fails:
    the served model's id once it is known; Triton's time and device once it answered."""

    model: str = UNKNOWN_MODEL
    compute_s: float = 0.0  # Triton's time for the classification (HF's x-compute-time)
    compute_type: str = ""  # where the network ran: cpu or gpu (HF's x-compute-type)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        registry, by_model = self.registry, ["model"]
        self.requests = Counter(
            "gateway_requests",
            "Classification requests by model and HTTP status",
            ["model", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "gateway_request_seconds",
            "Classification latency, body read to answer",
            by_model,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.triton_latency = Histogram(
            "gateway_triton_seconds",
            "Time in Triton per classification (POSTs and stream windows), by model",
            by_model,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # livesum: summed over the live workers
        self.in_flight = Gauge(
            "gateway_in_flight",
            "Classifications admitted and in progress (gateway.admission's permits)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.streams = Gauge(
            "gateway_streams", "Live-audio WebSocket streams open", registry=registry, multiprocess_mode="livesum"
        )
        self.stub_reloads = Counter(
            "gateway_stub_reloads",
            "Triton steps the gateway reloaded because their Python stub process had died (the model-sync reloads "
            "the others, and logs each)",
            registry=registry,
        )
        self.stream_windows = Counter(
            "gateway_stream_windows", "Windows of live-audio streams classified, by model", by_model, registry=registry
        )
        self.on_demand_loads = Counter(
            "gateway_on_demand_loads", "On-demand models loaded into Triton by the gateway", registry=registry
        )
        self.on_demand_evictions = Counter(
            "gateway_on_demand_evictions",
            "On-demand models unloaded to make room (least recently used)",
            registry=registry,
        )
        self.on_demand_load_seconds = Histogram(
            "gateway_on_demand_load_seconds",
            "Seconds to load an exported on-demand model into Triton",
            buckets=(0.5, 1, 2, 5, 10, 20, 40, 80),
            registry=registry,
        )

    @contextlib.contextmanager
    def request(self) -> Iterator[Outcome]:
        """Count one classify request by model and status (a ``GatewayError``'s, else 500) and time it."""
        outcome, started, status = Outcome(), time.perf_counter(), 500
        try:
            yield outcome
            status = 200
        except GatewayError as error:
            status = error.status
            raise
        finally:
            self.requests.labels(outcome.model, str(status)).inc()
            self.latency.labels(outcome.model).observe(time.perf_counter() - started)

    def exposition(self) -> bytes:
        """The text format: this process's metrics, or every worker's summed in multiprocess mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
