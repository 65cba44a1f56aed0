"""Shared fixtures: tiny checkpoints, a repository exported from them, and a real tritonserver serving it.

``make test`` runs the suite on two pytest-xdist workers (``--dist loadfile``: each module runs whole on one
worker, so its module-scoped stacks start once; ``--no-loadscope-reorder``: in the order
``pytest_collection_modifyitems`` sets). The tiny checkpoints and the repository exported from them are
built once per run and read by both workers: the checkpoints by whichever worker needs them first
(``_once_per_run``), the exports by every worker that needs them while some are still missing, each taking the
next one nobody has taken (``_each_once_per_run``). The session's tritonserver on that repository is one per run
too: the first worker to need it starts it, both use it, and the xdist controller kills it when both are done
(``SHARED_SERVERS``). (Not ``loadgroup``, which would keep every user of that server on one worker: pytest-xdist
3.8 tags groups by assigning ``item._nodeid``, which pytest 9.2 no longer reads, so its groups are silently
ignored.)
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import tiny_checkpoints
import torch
from filelock import FileLock, Timeout
from helpers import PROBLEM_TYPES, RATE_8K, ROOT, model_name, running_gateway
from huggingface_hub import constants

from export.exporter import ExportOptions, ExportResult, export_model
from local_triton.tritonserver import LocalTriton, Ports, free_port, kill_server
from triton_steps import engines

T = TypeVar("T")
# A folder (made by the controller, inherited by the workers it starts) where a worker records the pid of a
# server the whole run shares; the controller kills those servers when the run ends.
SHARED_SERVERS = "TESTS_SHARED_SERVERS"


def _is_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


def pytest_configure(config: pytest.Config) -> None:
    if _is_worker():
        # Two workers share the cores: each computes on one thread, and so do the processes it starts (the
        # loader's and make's exports): OpenMP threads of both workers spinning on the same two cores cost more
        # CPU than they save on tiny models. (The steps' engines take their threads from their configs.)
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    else:  # the controller (or a run without xdist), before any worker starts
        os.environ[SHARED_SERVERS] = tempfile.mkdtemp(prefix="pytest-shared-servers-")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _is_worker():
        return
    folder = Path(os.environ.pop(SHARED_SERVERS))
    for record in folder.iterdir():
        kill_server(int(record.name))
    shutil.rmtree(folder)


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
    if not _is_worker():
        return build(factory.mktemp(name))
    shared = factory.getbasetemp().parent  # the run's folder, above each worker's own
    result = shared / f"{name}.pickle"
    with FileLock(shared / f"{name}.lock"):
        if not result.exists():
            folder = shared / name
            folder.mkdir()
            result.write_bytes(pickle.dumps(build(folder)))
        return pickle.loads(result.read_bytes())


def _each_once_per_run(
    factory: pytest.TempPathFactory, name: str, keys: list[str], build: Callable[[str, Path], T]
) -> dict[str, T]:
    """``build(key, folder)`` for each key, built once per run: under xdist every worker that asks takes, in
    order, the keys no other worker has taken yet and builds them, then waits for the others' (one export at a
    time per worker, both workers exporting while one would otherwise wait)."""
    if not _is_worker():
        folder = factory.mktemp(name)
        return {key: build(key, folder) for key in keys}
    shared = factory.getbasetemp().parent
    folder = shared / name
    folder.mkdir(exist_ok=True)
    for key in keys:
        lock = FileLock(shared / f"{name}-{key}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:  # another worker is building it
            continue
        try:
            result = shared / f"{name}-{key}.pickle"
            if not result.exists():
                result.write_bytes(pickle.dumps(build(key, folder)))
        finally:
            lock.release()
    built = {}
    for key in keys:
        with FileLock(shared / f"{name}-{key}.lock"):
            built[key] = pickle.loads((shared / f"{name}-{key}.pickle").read_bytes())
    return built


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
        # a telephone-rate model: every request resampled to 8 kHz
        folders[RATE_8K] = tiny_checkpoints.build("wav2vec2-layer-norm", root / RATE_8K, sampling_rate=8000)
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

    def export(name: str, folder: Path) -> tuple[Path, ExportResult]:
        # one preprocess instance: every test here sends one request at a time or a few, and each instance is
        # a stub process the session's Triton starts
        options = ExportOptions(name=name, model_id=ids.get(name), engine=engines.OPENVINO, preprocess_instances=1)
        repository = folder / "model_repository"
        return repository, export_model(str(checkpoints[name]), repository, options)

    built = _each_once_per_run(tmp_path_factory, "export", list(checkpoints), export)
    (repository,) = {folder for folder, _ in built.values()}
    return repository, {name: result for name, (_, result) in built.items()}


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
    """A real tritonserver (from the nvidia-pytriton wheel) serving every exported model, one per run."""
    if not _is_worker():
        ports = Ports(free_port(), free_port(), free_port())
        server = LocalTriton(repository, tmp_path_factory.mktemp("triton"), ports)
        with _killed_at_the_end(server):
            yield server
        return

    def start(folder: Path) -> tuple[Path, Ports]:
        server = LocalTriton(repository, folder, Ports(free_port(), free_port(), free_port())).start()
        assert server.process is not None
        (Path(os.environ[SHARED_SERVERS]) / str(server.process.pid)).touch()  # the controller kills it
        return folder, server.ports

    folder, ports = _once_per_run(tmp_path_factory, "triton", start)
    yield LocalTriton(repository, folder, ports)  # the same server, seen from this worker


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
