"""Soak: many requests at high concurrency through gateway -> Triton (the committed repository), checking
that none is lost or answered wrong and that the gateway's memory does not grow (``make soak``).

    .venv/bin/python benchmarks/soak.py [--requests 10000] [--concurrency 64] [--audio samples/yes.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, Ports, free_port, http_ok

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


async def soak(url: str, audio: bytes, requests: int, concurrency: int) -> tuple[Counter, int, float]:
    expected = httpx.post(f"{url}/", content=audio, timeout=60).json()
    statuses: Counter = Counter()
    wrong = 0
    remaining = list(range(requests))

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal wrong
        while remaining:
            remaining.pop()
            response = await http.post(f"{url}/", content=audio)
            statuses[response.status_code] += 1
            wrong += response.status_code == 200 and response.json() != expected

    limits = httpx.Limits(max_connections=concurrency)
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return statuses, wrong, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/soak.py")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--audio", default=str(ROOT / "samples" / "yes.wav"))
    parser.add_argument("--workdir", default=str(ROOT / ".run" / "soak"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    with (
        LocalTriton(ROOT / "model_repository", workdir, Ports(free_port(), free_port(), free_port())) as triton,
        GatewayProcess(triton.grpc_url, free_port(), workdir / "gateway.log") as gateway,
    ):
        deadline = time.monotonic() + 60
        while not http_ok(f"{gateway.url}/ready") and time.monotonic() < deadline:
            time.sleep(0.2)
        audio = Path(args.audio).read_bytes()
        before = rss_mb(gateway.process.pid)
        statuses, wrong, seconds = asyncio.run(soak(gateway.url, audio, args.requests, args.concurrency))
        after = rss_mb(gateway.process.pid)
    lost = args.requests - sum(statuses.values())
    print(
        f"{args.requests} requests at concurrency {args.concurrency} in {seconds:.1f}s "
        f"({args.requests / seconds:.0f} req/s): statuses {dict(statuses)}, {wrong} wrong, {lost} lost; "
        f"gateway RSS {before:.0f} -> {after:.0f} MB"
    )
    return 0 if lost == 0 and wrong == 0 and set(statuses) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
