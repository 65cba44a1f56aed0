"""Stub health on a real tritonserver serving the default model: dead stubs are found from their processes,
a stopped (as slow as can be) stub is never taken for dead, and the health machinery runs no request
through any model of an idle server (Triton's own statistics count them)."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import free_port

from local_triton.tritonserver import LocalTriton, Ports
from model_store import location
from model_store.sync import Sync
from stub_health import processes as stub_processes
from stub_health.healer import StubHealer
from triton_control import TritonControl
from triton_steps.contract import StepNames

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = StepNames("keyword-spotter")


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    server = LocalTriton(
        ROOT / "model_repository", tmp_path_factory.mktemp("heal"), Ports(free_port(), free_port(), free_port())
    )
    with server:
        yield server


def _stubs(server_pid: int) -> dict[int, str]:
    """pid -> instance name of every live stub process of the server."""
    stubs = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        argv = process.info["cmdline"] or [""]
        if argv[0].endswith(stub_processes.STUB_BINARY) and argv[5] == str(server_pid):
            stubs[process.info["pid"]] = argv[8]
    return stubs


def _pid_of(instance: str, server_pid: int) -> int:
    (pid,) = [pid for pid, name in _stubs(server_pid).items() if name == instance]
    return pid


def _inference_counts(triton: LocalTriton) -> dict[str, int]:
    with TritonControl(triton.grpc_url) as control:
        return {name: counted.inferences for name, counted in control.statistics().items()}


def _wait_all_alive(healer: StubHealer, triton: LocalTriton, timeout: float = 60) -> stub_processes.Stubs:
    deadline = time.monotonic() + timeout
    while True:
        stubs = stub_processes.find(triton.ports.grpc)
        if stubs is not None and not healer._missing(healer._ready(), stubs):
            return stubs
        assert time.monotonic() < deadline, "the stubs did not come back"
        time.sleep(0.2)


def test_every_step_of_the_served_model_is_seen_as_its_stub_processes(triton: LocalTriton) -> None:
    stubs = stub_processes.find(triton.ports.grpc)
    assert stubs is not None and stubs.server_pid == triton.process.pid
    repository = TritonControl(triton.grpc_url)
    expected = set()
    for step in (DEFAULT.preprocess, DEFAULT.network, DEFAULT.postprocess):
        config = repository.config(step)
        assert stub_processes.runs_in_stubs(config, stubs)  # the network step too: the local onnxruntime shim
        expected |= stub_processes.instance_names(config)
    assert not stub_processes.runs_in_stubs(repository.config(DEFAULT.ensemble), stubs)
    assert f"{DEFAULT.preprocess}_0_1" in expected  # two preprocess instances
    assert expected <= stubs.instances
    assert stub_processes.find(free_port()) is None  # no server there: nothing is guessed


def test_an_idle_server_gets_no_request_from_the_health_machinery(triton: LocalTriton) -> None:
    before = _inference_counts(triton)
    sync = Sync(location.parse(ROOT / "model_repository"), TritonControl(triton.grpc_url), 0.1)
    sync.start()
    try:
        time.sleep(3)  # about 30 rounds
    finally:
        sync.stop()
    after = _inference_counts(triton)
    assert after == before
    assert after[DEFAULT.network] == 0


def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the sync and the healer logged (in this process: their threads included)."""
    return [r.getMessage() for r in caplog.records if r.name.startswith(("model_store", "stub_health"))]


def test_a_stopped_stub_is_not_dead_and_a_killed_one_is_reloaded(
    triton: LocalTriton, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="model_store")
    caplog.set_level(logging.INFO, logger="stub_health")
    healer = StubHealer(TritonControl(triton.grpc_url))
    stubs = _wait_all_alive(healer, triton)
    count = len(_stubs(stubs.server_pid))
    network = _pid_of(f"{DEFAULT.network}_0_0", stubs.server_pid)
    os.kill(network, signal.SIGSTOP)  # the slowest answer there is: no answer at all, for seconds
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert healer.check() == [], _logged(caplog)
            time.sleep(0.1)
    finally:
        os.kill(network, signal.SIGCONT)
    assert _logged(caplog) == []

    # One of two preprocess instances; then the network step's only stub (its backend is still known to
    # run in stubs: the local onnxruntime shim's folder holds a model.py).
    for step, instance in ((DEFAULT.preprocess, "0_1"), (DEFAULT.network, "0_0")):
        caplog.clear()
        victim = _pid_of(f"{step}_{instance}", stubs.server_pid)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 10
        while not (reloaded := healer.check()):
            assert time.monotonic() < deadline, "the dead stub was not found"
            time.sleep(0.1)
        assert reloaded == [step]
        assert _logged(caplog) == [f"reloaded {step}: its stub {step}_{instance} had died"]
        stubs = _wait_all_alive(healer, triton)
        print(f"killed {step} stub found and reloaded in {time.monotonic() - killed:.1f}s")
        # No orphan: the reloaded model's old instances (the dead stub's siblings too) leave with the old model.
        deadline = time.monotonic() + 30
        while len(_stubs(stubs.server_pid)) != count:
            assert time.monotonic() < deadline, f"orphaned stubs: {_stubs(stubs.server_pid)}"
            time.sleep(0.2)
        assert victim not in _stubs(stubs.server_pid)
        assert healer.check() == []
