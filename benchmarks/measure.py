"""Timing for the benchmarks: a closed-loop load at a given concurrency, or serial calls, each run until both
a request count and a time budget are reached; summarized as clips/s and p50 / p99 latency."""

from __future__ import annotations

import asyncio
import os
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil


@dataclass(frozen=True)
class Result:
    clips_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.clips_per_s:8.2f} clips/s   p50 {self.p50_ms:8.1f} ms   p99 {self.p99_ms:8.1f} ms"


def _summary(latencies: list[float], elapsed: float) -> Result:
    ms = np.array(latencies) * 1000
    return Result(len(latencies) / elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(latencies))


async def under_load(
    call: Callable[[], Awaitable[object]], concurrency: int, min_requests: int, min_seconds: float
) -> Result:
    """``concurrency`` clients calling ``call`` back to back (after one warm-up call each)."""
    await asyncio.gather(*(call() for _ in range(concurrency)))
    latencies: list[float] = []
    start = time.perf_counter()

    async def client() -> None:
        while len(latencies) < min_requests or time.perf_counter() - start < min_seconds:
            began = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return _summary(latencies, time.perf_counter() - start)


def serial(call: Callable[[], object], min_requests: int, min_seconds: float, warmup: int = 2) -> Result:
    """``call`` one at a time, in this process (after ``warmup`` calls)."""
    for _ in range(warmup):
        call()
    latencies: list[float] = []
    start = time.perf_counter()
    while len(latencies) < min_requests or time.perf_counter() - start < min_seconds:
        began = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - began)
    return _summary(latencies, time.perf_counter() - start)


def median(results: list[Result]) -> Result:
    """The median of each figure over rounds of one measurement; ``requests`` is their sum."""
    return Result(
        float(np.median([r.clips_per_s for r in results])),
        float(np.median([r.p50_ms for r in results])),
        float(np.median([r.p99_ms for r in results])),
        sum(r.requests for r in results),
    )


def machine() -> str:
    """The CPU a figure was measured on, as the docs name it: its model, whether it has bf16 and AMX (the machines
    of this project differ in both), and the CPU count."""
    cpuinfo = Path("/proc/cpuinfo")
    info = cpuinfo.read_text(encoding="utf-8") if cpuinfo.exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    features = ", ".join(
        f"{'with' if f in flags else 'without'} {name}"
        for f, name in (("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX"))
    )
    return f"{model or platform.machine()} ({features}), {os.cpu_count()} CPUs"


def cpu_s(pid: int, children: bool = True) -> float:
    """CPU seconds used so far by process ``pid`` and (``children``) its children: tritonserver's Python stubs, a
    gateway's workers."""
    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *(root.children(recursive=True) if children else ())):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
