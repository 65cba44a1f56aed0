"""A rolling restart of the gateway tier under load loses no request: two real gateways in front of one
Triton, each stopped with SIGTERM (it drains) and started again in turn while 8 clients keep sending. The
clients do what a load balancer in front of the replicas does: send each request to the next replica, and
once more to the other when a replica refuses the connection or answers 503 "shutting down" (the drain's
answer, given before any work)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, free_port

ROOT = Path(__file__).resolve().parents[2]
CLIP = (ROOT / "samples" / "yes.wav").read_bytes()
CLIENTS = 8


async def _send(client: httpx.AsyncClient, urls: list[str], turn: int) -> tuple[int, int]:
    """One request, as a balancer with one retry sends it: (its final status, tries)."""
    for attempt in range(2):
        url = urls[(turn + attempt) % len(urls)]
        try:
            answer = await client.post(f"{url}/", content=CLIP)
        except httpx.TransportError:  # refused or closed: the replica is stopping or starting
            continue
        if answer.status_code == 503 and "shutting down" in answer.json().get("error", ""):
            continue
        return answer.status_code, attempt + 1
    return 0, 2


def test_restarting_each_gateway_in_turn_under_load_loses_no_request(
    default_served: tuple[LocalTriton, str], tmp_path: Path
) -> None:
    triton, _ = default_served
    gateways = [
        GatewayProcess(triton.grpc_url, free_port(), tmp_path / f"gateway{i}.log", drain_s="20").start()
        for i in range(2)
    ]
    urls = [gateway.url for gateway in gateways]
    results: list[tuple[int, int]] = []

    async def scenario() -> None:
        stop = asyncio.Event()

        async def client(offset: int) -> None:
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=2)) as http:
                turn = offset
                while not stop.is_set():
                    results.append(await _send(http, urls, turn))
                    turn += 1

        clients = [asyncio.create_task(client(i)) for i in range(CLIENTS)]
        await asyncio.sleep(1)
        for gateway in gateways:  # the rollout: one replica at a time
            gateway.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(gateway.process.wait, 30)
            await asyncio.sleep(0.5)  # down for a moment, as a replaced pod is
            await asyncio.to_thread(gateway.start)
            await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*clients)

    try:
        asyncio.run(scenario())
    finally:
        for gateway in gateways:
            gateway.stop()
    lost = [status for status, _ in results if status != 200]
    retried = sum(1 for _, tries in results if tries > 1)
    print(f"{len(results)} requests through a rolling restart of 2 gateways: {len(lost)} lost, {retried} retried")
    assert results and not lost, lost[:10]
    assert retried > 0  # the restarts happened under load
