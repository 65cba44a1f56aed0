"""The container stack for real (``make compose-test``): ``scripts/compose.sh`` brings docker-compose.yml up
(CPU variant: the slim Triton image) with podman or Docker, the containerised gateway answers as local mode
does, a model exported into the mounted repository is loaded without a restart, killed processes come back,
and ``down`` leaves nothing behind. Skipped, with the reason, where no container engine is usable."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import tiny_checkpoints
from helpers import TOLERANCE, wait_until, wav_bytes

from export.exporter import ExportOptions, export_model
from local_triton.tritonserver import LocalTriton, free_port

pytestmark = pytest.mark.containers

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "scripts" / "compose.sh"
SAMPLES = sorted((ROOT / "samples").iterdir())
REAL_CLIPS = sorted((ROOT / "tests" / "data" / "speech_commands_validation").glob("*/*.flac"))
SECOND_MODEL = "late-arrival"


@dataclass(frozen=True)
class Stack:
    url: str
    env: dict[str, str]
    repository: Path

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(COMPOSE), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    @property
    def project(self) -> str:
        return self.env["COMPOSE_PROJECT_NAME"]

    def engine(self) -> str:
        return self.compose("engine").stdout.strip()

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1" if self.engine() == "podman" else f"{self.project}-{service}-1"

    def host_pids(self, service: str) -> set[int]:
        """The host pids of a service's container's processes."""
        engine = self.engine()
        fields = ["hpid"] if engine == "podman" else ["-o", "pid"]
        result = subprocess.run(
            [engine, "top", self.container(service), *fields], capture_output=True, text=True, check=False
        )
        return {int(word) for word in result.stdout.split() if word.isdigit()}

    def inspect(self, service: str, template: str) -> str:
        result = subprocess.run(
            [self.engine(), "inspect", "--format", template, self.container(service)],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    probe = subprocess.run([str(COMPOSE), "engine"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no usable container engine: {probe.stderr.strip()}")
    # The containers run as a non-root user: the mounted repository must be readable by others (pytest's own
    # temporary folders are 0700).
    workdir = Path(tempfile.mkdtemp(prefix="compose-test-"))
    workdir.chmod(0o755)
    repository = workdir / "model_repository"
    shutil.copytree(ROOT / "model_repository", repository)
    port = free_port()
    env = dict(
        os.environ,
        COMPOSE_PROJECT_NAME=f"hf-audio-triton-test-{os.getpid()}",
        COMPOSE_VARIANT="cpu",
        GATEWAY_PORT=str(port),
        MODEL_REPOSITORY_DIR=str(repository),
        GATEWAY_DEFAULT_MODEL="keyword-spotter",
        GATEWAY_API_TOKEN="",
    )
    stack = Stack(f"http://127.0.0.1:{port}", env, repository)
    started = time.monotonic()
    up = stack.compose("up")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        print(f"compose up (builds included): {time.monotonic() - started:.1f} s")
        yield stack
    finally:
        stack.compose("down")
        shutil.rmtree(workdir, ignore_errors=True)


def _answers(url: str, clips: list[bytes]) -> list[dict[str, float]]:
    async def all_answers() -> list[dict[str, float]]:
        limit = asyncio.Semaphore(8)
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(audio: bytes) -> dict[str, float]:
                async with limit:
                    answer = await client.post(f"{url}/", content=audio)
                    assert answer.status_code == 200, answer.text
                    return {entry["label"]: entry["score"] for entry in answer.json()}

            return await asyncio.gather(*(one(clip) for clip in clips))

    return asyncio.run(all_answers())


def test_containerised_gateway_answers_as_local_mode(stack: Stack, default_served: tuple[LocalTriton, str]) -> None:
    """Every sample and the committed real-speech subset: the same labels and scores as `make serve`'s stack
    (tritonserver from the same wheel, outside any container) on the same repository."""
    clips = [path.read_bytes() for path in SAMPLES + REAL_CLIPS]
    in_containers, local = _answers(stack.url, clips), _answers(default_served[1], clips)
    for path, got, expected in zip(SAMPLES + REAL_CLIPS, in_containers, local, strict=True):
        assert got.keys() == expected.keys(), path
        assert all(abs(got[label] - expected[label]) <= TOLERANCE for label in got), (path, got, expected)
    for path, answer in zip(SAMPLES, in_containers[: len(SAMPLES)], strict=True):
        assert max(answer, key=answer.get) == path.stem  # each sample is the keyword it is named after


def _wait_for(condition, timeout: float, what: str) -> float:
    """Seconds until ``condition`` held (``what`` names it in a failure)."""
    started = time.monotonic()
    wait_until(condition, timeout, 0.5, what)
    return time.monotonic() - started


def test_a_model_exported_into_the_mounted_repository_is_loaded_without_a_restart(stack: Stack, tmp_path: Path) -> None:
    checkpoint = tiny_checkpoints.build("wav2vec2-layer-norm", tmp_path / "checkpoint")
    export_model(str(checkpoint), stack.repository, ExportOptions(name=SECOND_MODEL))

    def served() -> bool:
        answer = httpx.post(f"{stack.url}/models/{SECOND_MODEL}", content=wav_bytes(_tone()), timeout=30)
        return answer.status_code == 200

    took = _wait_for(served, 120, f"{SECOND_MODEL} served")
    print(f"exported model served by the running stack {took:.1f} s after the export")
    assert stack.inspect("triton", "{{.RestartCount}}") == "0"  # loaded by model-sync, not by a restart


def _tone() -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)


def _pids(pattern: str) -> list[int]:
    result = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(pid) for pid in result.stdout.split()]


def test_a_killed_stub_is_reloaded_by_the_model_sync(stack: Stack) -> None:
    """The sync runs in Triton's container: it sees a stub die and reloads that step, with no request."""
    before = _pids("triton_python_backend_stub /models/keyword-spotter_preprocess/")
    assert len(before) >= 1
    os.kill(before[0], signal.SIGKILL)

    def healed() -> bool:
        logs = stack.compose("logs", "triton").stdout + stack.compose("logs", "triton").stderr
        return "reloaded keyword-spotter_preprocess" in logs

    took = _wait_for(healed, 60, "the reload")
    print(f"killed preprocess stub reloaded by the model sync after {took:.1f} s")
    assert httpx.post(f"{stack.url}/", content=SAMPLES[0].read_bytes(), timeout=30).status_code == 200


def test_a_killed_triton_container_is_restarted_while_the_gateway_answers_503(stack: Stack) -> None:
    os.kill(int(stack.inspect("triton", "{{.State.Pid}}")), signal.SIGKILL)  # as the OOM killer would
    statuses: list[int] = []
    started = time.monotonic()
    while not statuses or statuses[-1] != 200 or len(statuses) < 2:
        assert time.monotonic() - started < 180, statuses[-20:]
        answer = httpx.post(f"{stack.url}/", content=SAMPLES[0].read_bytes(), timeout=30)
        statuses.append(answer.status_code)
        if answer.status_code != 200:
            assert answer.status_code == 503 and "error" in answer.json(), answer.text
            assert answer.headers["retry-after"]
        time.sleep(0.25)
    print(f"killed Triton container: answering 200 again after {time.monotonic() - started:.1f} s")
    assert 503 in statuses
    assert stack.inspect("triton", "{{.RestartCount}}") == "1"
    wait_until(lambda: _sync_pids(stack), 30, 0.5, "the model sync running again")  # it came back with Triton


def _sync_pids(stack: Stack) -> list[int]:
    """The host pids of the model sync in Triton's container."""
    ours = stack.host_pids("triton")
    return [pid for pid in _pids("^python3 -m model_store sync --repository /models") if pid in ours]


def test_a_killed_model_sync_is_restarted_beside_triton(stack: Stack) -> None:
    """Nothing can strand the sync: killed (the OOM killer), it is started again in Triton's container, which
    keeps serving throughout."""
    (sync,) = wait_until(lambda: _sync_pids(stack), 30, 0.5, "the model sync running")
    os.kill(sync, signal.SIGKILL)
    took = _wait_for(lambda: _sync_pids(stack) not in ([], [sync]), 30, "a new model sync")
    print(f"killed model sync running again after {took:.1f} s")
    assert httpx.post(f"{stack.url}/", content=SAMPLES[0].read_bytes(), timeout=30).status_code == 200
    assert stack.inspect("triton", "{{.RestartCount}}") in ("0", "1")  # not restarted for it


def test_down_leaves_no_container_network_or_volume(stack: Stack) -> None:
    down = stack.compose("down")
    assert down.returncode == 0, down.stderr[-2000:]
    engine = stack.engine()
    for listing in (
        ["container", "ls", "-a", "--format", "{{.Names}}"],
        ["network", "ls", "--format", "{{.Name}}"],
        ["volume", "ls", "--format", "{{.Name}}"],
    ):
        names = subprocess.run([engine, *listing], capture_output=True, text=True, check=True).stdout
        assert stack.project not in names, f"{listing[0]}s left: {names}"
