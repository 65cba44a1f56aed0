"""Shared fixtures: tiny checkpoints, a repository exported from them, and a real tritonserver serving it.

``make test`` runs the suite on two pytest-xdist workers (``--dist loadfile``: each module runs whole on one
worker, so its module-scoped stacks start once; ``--no-loadscope-reorder``: in the order
``pytest_collection_modifyitems`` sets). The tiny checkpoints and the repository exported from them are
built once per run, by whichever worker needs them first, and read by both (``_once_per_run``); each worker that
needs the session's tritonserver starts its own on that repository. (Not ``loadgroup``, which would keep every
user of that server on one worker: pytest-xdist 3.8 tags groups by assigning ``item._nodeid``, which pytest 9.2
no longer reads, so its groups are silently ignored.)
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import tiny_checkpoints
import torch
from filelock import FileLock
from helpers import PROBLEM_TYPES, ROOT, model_name, running_gateway
from huggingface_hub import constants

from export.exporter import ExportOptions, ExportResult, export_model
from local_triton.tritonserver import LocalTriton, Ports, free_port
from triton_steps import engines

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    if "PYTEST_XDIST_WORKER" in os.environ:
        # Two workers share the cores: each computes on one thread, and so do the processes it starts (the
        # loader's and make's exports): OpenMP threads of both workers spinning on the same two cores cost more
        # CPU than they save on tiny models. (The steps' engines take their threads from their configs.)
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end modules first, those that need the session's export after those that do not, then the
    rest (xdist hands the modules out in this order): the first worker to reach the export builds it while the
    other is still busy, instead of both waiting on it at the start."""
    uses_export = {item.path for item in items if "_exports" in getattr(item, "fixturenames", ())}

    def rank(item: pytest.Item) -> int:
        return 1 if item.path in uses_export else 0 if item.path.parent.name == "e2e" else 2

    items.sort(key=rank)  # stable: each module's own order is kept


def _once_per_run(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]) -> T:
    """``build(folder)``'s result, built once per run: under xdist the first worker to ask builds it in a folder
    both workers see and pickles the result; the other waits for it and reads it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(factory.mktemp(name))
    shared = factory.getbasetemp().parent  # the run's folder, above each worker's own
    result = shared / f"{name}.pickle"
    with FileLock(shared / f"{name}.lock"):
        if not result.exists():
            folder = shared / name
            folder.mkdir()
            result.write_bytes(pickle.dumps(build(folder)))
        return pickle.loads(result.read_bytes())


@contextlib.contextmanager
def _killed_at_the_end(server: LocalTriton) -> Iterator[LocalTriton]:
    """``server`` started, then killed with whatever it left (``LocalTriton.clean_up``) rather than stopped
    gracefully: the session's servers stop as the run ends, where waiting for 16 models to unload cost up to 18 s
    (the graceful stop is tested where it is the point: make serve's Ctrl-C, drains, restarts)."""
    server.start()
    try:
        yield server
    finally:
        server.clean_up()
        if server.process is not None:
            server.process.wait()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> a saved tiny checkpoint folder, for each architecture and each extra problem type."""

    def build(root: Path) -> dict[str, Path]:
        folders = {model_name(a): tiny_checkpoints.build(a, root / a) for a in tiny_checkpoints.ARCHITECTURES}
        for name, problem_type in PROBLEM_TYPES.items():
            folders[name] = tiny_checkpoints.build("wav2vec2-layer-norm", root / name, problem_type=problem_type)
        return folders

    return _once_per_run(tmp_path_factory, "checkpoints", build)


@pytest.fixture
def offline_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF hub cache, with huggingface_hub (in this process) offline and pointed at it; fill it with
    ``tiny_checkpoints.hub_snapshot``."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.fixture(scope="session")
def _exports(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Every checkpoint exported into one repository: (its folder, name -> the ExportResult)."""
    # hubert gets a Hub-style id, as a local copy of a Hub checkpoint would: the gateway routes org/name
    ids = {"hubert": "org/hubert-ks"}

    def export(folder: Path) -> tuple[Path, dict[str, ExportResult]]:
        repository = folder / "model_repository"
        return repository, {
            name: export_model(
                str(source), repository, ExportOptions(name=name, model_id=ids.get(name), engine=engines.OPENVINO)
            )
            for name, source in checkpoints.items()
        }

    return _once_per_run(tmp_path_factory, "export", export)


@pytest.fixture(scope="session")
def exported(_exports: tuple[Path, dict[str, ExportResult]]) -> dict[str, ExportResult]:
    """name -> the result of exporting that checkpoint into ``repository``, each network on OpenVINO: every
    architecture's served scores are then OpenVINO's (onnxruntime's are the default model's, and auto's)."""
    return _exports[1]


@pytest.fixture(scope="session")
def repository(_exports: tuple[Path, dict[str, ExportResult]]) -> Path:
    """The model repository holding every exported model."""
    return _exports[0]


@pytest.fixture(scope="session")
def triton(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """A real tritonserver (from the nvidia-pytriton wheel) serving every exported model."""
    server = LocalTriton(repository, tmp_path_factory.mktemp("triton"), Ports(free_port(), free_port(), free_port()))
    with _killed_at_the_end(server):
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
    with _killed_at_the_end(triton), running_gateway(triton.grpc_url) as url:
        yield triton, url
