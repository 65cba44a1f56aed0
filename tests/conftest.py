"""Shared fixtures: tiny checkpoints, a repository exported from them, and a real tritonserver serving it."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import tiny_checkpoints
from huggingface_hub import constants

from export.exporter import ExportOptions, ExportResult, export_model
from local_triton.server import LocalTriton, Ports, free_port
from local_triton.services import GatewayProcess

ROOT = Path(__file__).resolve().parents[1]

# Extra exports beyond one per architecture: transformers' other function_to_apply defaults.
PROBLEM_TYPES = {"w2v_multilabel": "multi_label_classification", "w2v_regression": "regression"}


def model_name(architecture: str) -> str:
    return architecture.replace("-", "_")


def read_until_ready(serve: subprocess.Popen[str], timeout: float = 240) -> list[str]:
    """The lines ``make serve`` printed up to its "ready: URL" line; fails showing them all if it stopped
    (or went quiet past ``timeout``) first."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines.append(serve.stdout.readline())
        if not lines[-1] or lines[-1].startswith("ready: "):
            break
    assert lines and lines[-1].startswith("ready: "), "".join(lines)
    return lines


def triton_arguments(shell_line: str, environment: dict[str, str], tmp_path: Path) -> list[str]:
    """The arguments a container's ``sh -c`` line hands tritonserver: run for real, with a stand-in
    ``tritonserver`` that prints them and this interpreter as ``python3``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "tritonserver").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (bin_dir / "tritonserver").chmod(0o755)
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # a link would lose the venv
    (bin_dir / "python3").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", **environment}
    done = subprocess.run(["sh", "-c", shell_line], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    return done.stdout.splitlines()


def make_waveform(seconds: float = 1.3, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """A deterministic speech-like test signal: harmonics with vibrato, plus noise."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2 + rng.standard_normal(len(t)) * 0.02
    return signal.astype(np.float32)


def wav_bytes(waveform: np.ndarray, rate: int = 16000, subtype: str = "FLOAT", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> a saved tiny checkpoint folder, for each architecture and each extra problem type."""
    root = tmp_path_factory.mktemp("checkpoints")
    folders = {model_name(a): tiny_checkpoints.build(a, root / a) for a in tiny_checkpoints.ARCHITECTURES}
    for name, problem_type in PROBLEM_TYPES.items():
        folders[name] = tiny_checkpoints.build("wav2vec2-layer-norm", root / name, problem_type=problem_type)
    return folders


@pytest.fixture
def offline_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF hub cache, with huggingface_hub (in this process) offline and pointed at it; fill it with
    ``tiny_checkpoints.hub_snapshot``."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.fixture(scope="session")
def repository_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export") / "model_repository"


@pytest.fixture(scope="session")
def exported(checkpoints: dict[str, Path], repository_dir: Path) -> dict[str, ExportResult]:
    """name -> the result of exporting that checkpoint into ``repository_dir``."""
    # hubert gets a Hub-style id, as a local copy of a Hub checkpoint would: the gateway routes org/name
    ids = {"hubert": "org/hubert-ks"}
    return {
        name: export_model(str(folder), repository_dir, ExportOptions(name=name, model_id=ids.get(name)))
        for name, folder in checkpoints.items()
    }


@pytest.fixture(scope="session")
def repository(exported: dict[str, ExportResult], repository_dir: Path) -> Path:
    """The model repository holding every exported model."""
    return repository_dir


@pytest.fixture(scope="session")
def triton(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """A real tritonserver (from the nvidia-pytriton wheel) serving every exported model."""
    server = LocalTriton(repository, tmp_path_factory.mktemp("triton"), Ports(free_port(), free_port(), free_port()))
    with server:
        yield server


@contextlib.contextmanager
def running_gateway(triton_grpc_url: str, **settings: str) -> Iterator[str]:
    """A real gateway process (``python -m gateway``) on a free port, only these settings (none from the
    environment); yields its base URL."""
    with tempfile.TemporaryDirectory() as logs:
        process = GatewayProcess(triton_grpc_url, free_port(), Path(logs) / "gateway.log", **settings)
        with process:
            yield process.url


@pytest.fixture(scope="session")
def gateway(triton: LocalTriton) -> Iterator[str]:
    """A gateway in front of the session's Triton, default model ``hubert``, no token."""
    with running_gateway(triton.grpc_url, default_model="hubert") as url:
        yield url


@pytest.fixture(scope="session")
def default_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalTriton, str]]:
    """The committed model_repository (the default model) on a real tritonserver, behind a gateway with
    default settings: (the server, the gateway's URL). Tests that kill its processes start their own."""
    ports = Ports(free_port(), free_port(), free_port())
    triton = LocalTriton(ROOT / "model_repository", tmp_path_factory.mktemp("default"), ports)
    with triton, running_gateway(triton.grpc_url) as url:
        yield triton, url
