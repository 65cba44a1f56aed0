"""A Python stub killed (kill -9, what the OOM killer does) on a real tritonserver: under load the gateway
reloads that model, answers 503 + Retry-After meanwhile, /ready says so, and afterwards every answer is
right, and the dead stub's shared memory is removed when the server stops; without traffic the sync running
beside Triton finds the dead stub by probing and reloads it."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest
from helpers import free_port, running_gateway

from local_triton.tritonserver import LocalTriton, Ports, remove_orphaned_regions
from model_store import location
from model_store.sync import Sync
from triton_control import TritonControl
from triton_steps.contract import StepNames

ROOT = Path(__file__).resolve().parents[2]
CLIP = (ROOT / "samples" / "yes.wav").read_bytes()
DEFAULT = StepNames("keyword-spotter")  # the committed default model


def stub_pids(workdir: Path, model: str = "") -> list[int]:
    """The Python stubs of ``model`` (every model: "") started by the tritonserver whose backends live under
    ``workdir``."""
    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        argv = process.info["cmdline"]
        ours = bool(argv) and argv[0].endswith("triton_python_backend_stub") and str(workdir) in argv[0]
        if ours and (not model or f"/{model}/" in argv[1]):
            pids.append(process.info["pid"])
    return pids


def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith(("model_store", "stub_health"))]


@pytest.mark.parametrize("step", [DEFAULT.network, DEFAULT.preprocess])
def test_a_killed_stub_is_reloaded_and_nothing_is_answered_wrong(
    step: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="model_store")
    caplog.set_level(logging.INFO, logger="stub_health")
    workdir = tmp_path / "run"
    triton = LocalTriton(ROOT / "model_repository", workdir, Ports(free_port(), free_port(), free_port()))
    with triton, running_gateway(triton.grpc_url) as gateway:
        expected = httpx.post(f"{gateway}/", content=CLIP, timeout=30).json()
        stubs_before = len(stub_pids(workdir))
        (victim, *_) = stub_pids(workdir, step)
        (victim_region,) = [psutil.Process(victim).cmdline()[2]]

        async def scenario() -> tuple[list[tuple[float, int, list]], list[tuple[float, int]], float]:
            answers: list[tuple[float, int, list]] = []
            readiness: list[tuple[float, int]] = []
            stop = asyncio.Event()
            killed_at = 0.0

            async def client(http: httpx.AsyncClient) -> None:
                while not stop.is_set():
                    response = await http.post(f"{gateway}/", content=CLIP)
                    answers.append((time.monotonic(), response.status_code, response.json()))
                    if response.status_code == 503:
                        assert response.headers["Retry-After"]
                        await asyncio.sleep(0.05)

            async def watch_ready(http: httpx.AsyncClient) -> None:
                while not stop.is_set():
                    readiness.append((time.monotonic(), (await http.get(f"{gateway}/ready")).status_code))
                    await asyncio.sleep(0.05)

            async def kill_then_wait() -> None:
                nonlocal killed_at
                await asyncio.sleep(1.0)
                killed_at = time.monotonic()
                os.kill(victim, signal.SIGKILL)
                deadline = killed_at + 60
                while time.monotonic() < deadline:  # recovered: /ready 200 again after having been 503
                    if any(s == 503 for _, s in readiness) and readiness[-1][1] == 200:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2.0)  # and keep the load on after it
                stop.set()

            async with httpx.AsyncClient(timeout=60) as http:
                await asyncio.gather(kill_then_wait(), watch_ready(http), *(client(http) for _ in range(4)))
            return answers, readiness, killed_at

        answers, readiness, killed_at = asyncio.run(scenario())
        reloads = re.search(r"^gateway_stub_reloads_total (\S+)$", httpx.get(f"{gateway}/metrics").text, re.M)
        assert reloads and float(reloads.group(1)) >= 1  # the gateway's own reload, counted for the dashboard
        # No orphan: a sibling of the dead stub can outlive the reload (seen under load); the sync beside Triton
        # removes it once it has outlived its grace, so there are as many stub processes as before the kill.
        repository = TritonControl(triton.grpc_url)
        sync = Sync(location.parse(ROOT / "model_repository"), repository, 0.5, orphan_grace_s=1.0)
        sync.start()
        try:
            deadline = time.monotonic() + 30
            while len(stub_pids(workdir)) != stubs_before:
                assert time.monotonic() < deadline, (
                    f"{len(stub_pids(workdir))} stubs, {stubs_before} before: {_logged(caplog)}"
                )
                time.sleep(0.2)
        finally:
            sync.stop()
        print(f"{step}: stub processes back to {stubs_before}; {_logged(caplog) or 'no orphan'}")
        # tritonserver keeps the dead stub's shared memory mapped until it exits ...
        assert (Path("/dev/shm") / victim_region).exists()
        assert victim_region not in remove_orphaned_regions(min_age_s=0)  # ... so it must stay while it runs
    assert not (Path("/dev/shm") / victim_region).exists()  # ... and goes when the server is stopped

    statuses = [status for _, status, _ in answers]
    assert set(statuses) <= {200, 503}, [a for a in answers if a[1] not in (200, 503)][:3]
    assert 503 in statuses  # the kill was noticed ...
    assert any(s == 503 for _, s in readiness) and readiness[-1][1] == 200  # ... /ready said so, then recovered
    for _, status, body in answers:  # nothing answered wrong
        if status == 200:
            assert [p["label"] for p in body] == [p["label"] for p in expected]
            assert abs(body[0]["score"] - expected[0]["score"]) < 1e-5
    unavailable = [t for t, s, _ in answers if s == 503]
    recovered_at = min((t for t, s, _ in answers if s == 200 and t > unavailable[-1]), default=None)
    assert recovered_at is not None and all(s == 200 for t, s, _ in answers if t > recovered_at)
    print(
        f"{step}: killed, first 503 after {unavailable[0] - killed_at:.2f}s, answering again after "
        f"{recovered_at - killed_at:.2f}s; {statuses.count(503)} of {len(statuses)} requests got 503"
    )


def test_the_sync_beside_triton_heals_a_dead_stub_without_any_traffic(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="model_store")
    caplog.set_level(logging.INFO, logger="stub_health")
    """What docker compose and Kubernetes run next to Triton: it probes, finds the dead stub, reloads it."""
    workdir = tmp_path / "run"
    triton = LocalTriton(ROOT / "model_repository", workdir, Ports(free_port(), free_port(), free_port()))
    with triton:
        sync = Sync(location.parse(ROOT / "model_repository"), TritonControl(triton.grpc_url), 0.5)
        sync.start()
        try:
            (victim,) = stub_pids(workdir, DEFAULT.network)
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            deadline = killed + 60
            while not any(f"reloaded {DEFAULT.network}" in line for line in _logged(caplog)):
                assert time.monotonic() < deadline, _logged(caplog)
                time.sleep(0.2)
            print(
                f"no traffic: the sync reloaded the dead stub's model {time.monotonic() - killed:.1f}s after the kill"
            )
        finally:
            sync.stop()
        assert stub_pids(workdir, DEFAULT.network) != [victim]
        with running_gateway(triton.grpc_url) as gateway:  # the first request after the heal is answered
            answer = httpx.post(f"{gateway}/", content=CLIP, timeout=30)
            assert answer.status_code == 200 and answer.json()[0]["label"] == "yes"
