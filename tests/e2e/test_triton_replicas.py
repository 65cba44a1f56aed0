"""Two real tritonservers behind one gateway (``GATEWAY_TRITON_URL=a,b``): one is killed (-9) under load at
concurrency 8 and no client sees anything but 200 with the single-replica answer; restarted, it takes
traffic again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, Ports, free_port
from triton_control import TritonControl

ROOT = Path(__file__).resolve().parents[2]
CLIPS = [path.read_bytes() for path in sorted((ROOT / "samples").iterdir())]
CONCURRENCY = 8
MODEL = "keyword-spotter"
TOLERANCE = 1e-5  # a clip batched with others may differ from it alone in the last float bits


def _replica(workdir: Path, ports: Ports) -> LocalTriton:
    return LocalTriton(ROOT / "model_repository", workdir, ports)


def _inferences(triton: LocalTriton) -> int:
    """Successful inferences of the ensemble on this replica (Triton's statistics)."""
    with TritonControl(triton.grpc_url) as control:
        return control.statistics(MODEL)[MODEL].inferences


async def _load(url: str, stop: asyncio.Event, answers: list[tuple[int, int, str]]) -> None:
    """CONCURRENCY clients posting the clips in turn until ``stop``; (clip index, status, body) each."""

    async def client(offset: int) -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            index = offset
            while not stop.is_set():
                clip = index % len(CLIPS)
                answer = await http.post(f"{url}/", content=CLIPS[clip])
                answers.append((clip, answer.status_code, answer.text))
                index += 1

    await asyncio.gather(*(client(i) for i in range(CONCURRENCY)))


@pytest.fixture
def replicas(tmp_path: Path):
    ports = [Ports(free_port(), free_port(), free_port()) for _ in range(2)]
    servers = [_replica(tmp_path / f"triton{i}", p).start() for i, p in enumerate(ports)]
    yield servers
    for server in servers:
        server.stop()


def test_a_killed_replica_costs_no_request_and_comes_back(replicas: list[LocalTriton], tmp_path: Path) -> None:
    first, second = replicas
    urls = f"{first.grpc_url},{second.grpc_url}"
    with GatewayProcess(urls, free_port(), tmp_path / "gateway.log", default_model=MODEL) as gateway:
        expected = [
            {entry["label"]: entry["score"] for entry in httpx.post(f"{gateway.url}/", content=clip).json()}
            for clip in CLIPS
        ]
        answers: list[tuple[int, int, str]] = []
        restarted: list[LocalTriton] = []

        async def scenario() -> None:
            stop = asyncio.Event()
            load = asyncio.create_task(_load(gateway.url, stop, answers))
            await asyncio.sleep(2)
            assert _inferences(first) > 0 and _inferences(second) > 0  # both take traffic
            os.kill(second.process.pid, signal.SIGKILL)  # the server; its stubs die with their parent's pipe
            await asyncio.sleep(4)
            second.clean_up()
            back = _replica(tmp_path / "triton1-again", second.ports)
            await asyncio.to_thread(back.start)
            restarted.append(back)
            deadline = time.monotonic() + 20
            while _inferences(back) == 0:  # gRPC reconnects to it and round_robin sends it requests again
                assert time.monotonic() < deadline, "the restarted replica took no traffic"
                await asyncio.sleep(0.5)
            stop.set()
            await load

        try:
            asyncio.run(scenario())
        finally:
            for server in restarted:
                server.stop()
        failures = [(status, body[:200]) for _, status, body in answers if status != 200]
        assert not failures, f"{len(failures)} of {len(answers)} failed: {failures[:5]}"
        for clip, _, body in answers:  # batched with others or alone, on either replica: the same answer
            got = {entry["label"]: entry["score"] for entry in json.loads(body)}
            assert got.keys() == expected[clip].keys()
            assert all(abs(got[label] - expected[clip][label]) <= TOLERANCE for label in got)
        retries = gateway.log_path.read_text().count("on another replica")
        print(
            f"{len(answers)} requests at concurrency {CONCURRENCY}, one replica killed and restarted: all 200 "
            f"({retries} retried on the other replica)"
        )
