"""Shared fixtures: tiny checkpoints, a repository exported from them, and a real tritonserver serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tiny_checkpoints
from helpers import PROBLEM_TYPES, ROOT, model_name, running_gateway
from huggingface_hub import constants

from export.exporter import ExportOptions, ExportResult, export_model
from local_triton.tritonserver import LocalTriton, Ports, free_port
from triton_steps import engines


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
    """name -> the result of exporting that checkpoint into ``repository_dir``, each network on OpenVINO: every
    architecture's served scores are then OpenVINO's (onnxruntime's are the default model's, and auto's)."""
    # hubert gets a Hub-style id, as a local copy of a Hub checkpoint would: the gateway routes org/name
    ids = {"hubert": "org/hubert-ks"}
    return {
        name: export_model(
            str(folder), repository_dir, ExportOptions(name=name, model_id=ids.get(name), engine=engines.OPENVINO)
        )
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
