"""The Python-backend stub processes of one tritonserver (psutil): which model instances have a live process.

This sees Triton's processes where it shares their PID namespace: on the same machine (``make serve``), in a
Kubernetes pod with ``shareProcessNamespace``, in compose with ``pid: service:triton``. python_backend starts
each stub as ``triton_python_backend_stub MODEL_PATH SHM_REGION SHM_SIZE SHM_GROWTH PARENT_PID LIB_DIR
IPC_HANDLE INSTANCE_NAME RUNTIME_DIR``, so a stub names its tritonserver, its model instance, and whether it
runs a Python model (``DEFAULT``) or a Python-based backend (its folder, e.g. the local onnxruntime shim).
A stopped, slow or busy stub is alive; only a process that is gone (or a zombie, which has no command line)
is dead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from triton_steps import contract

STUB_BINARY = "triton_python_backend_stub"
SERVER_BINARY = "tritonserver"
DEFAULT_GRPC_PORT = contract.TRITON_GRPC_PORT  # tritonserver's own default for --grpc-port
DEFAULT_BACKEND_DIRECTORY = "/opt/tritonserver/backends"  # and for --backend-directory
PYTHON_MODEL_RUNTIME = "DEFAULT"  # the runtime argument of a stub that runs a model.py
_PARENT, _INSTANCE, _RUNTIME = 5, 8, 9  # argument positions in a stub's command line


@dataclass(frozen=True)
class Stubs:
    """One tritonserver's live stubs (instance names), and its Python-based backends (by name): those seen
    running in stubs, and those whose folder holds a ``model.py`` (known even when all their stubs died)."""

    server_pid: int
    pids: dict[int, str]  # pid -> instance name
    python_based_backends: frozenset[str]

    @property
    def instances(self) -> frozenset[str]:
        return frozenset(self.pids.values())

    def superseded(self) -> dict[int, str]:
        """Stubs whose instance name a newer stub of this server also has (pid -> name): an old instance of a
        reloaded model, which leaves once its last request is done, unless it is orphaned."""
        newest: dict[str, int] = {}
        for pid, name in self.pids.items():
            if name not in newest or _started(pid) > _started(newest[name]):
                newest[name] = pid
        return {pid: name for pid, name in self.pids.items() if newest[name] != pid}


def _processes() -> Iterator[list[str]]:
    """The command line of every visible process with one (``argv[0]`` first) and its pid last (zombies and
    kernel threads have none)."""
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.info["cmdline"]:
            yield [*process.info["cmdline"], str(process.info["pid"])]


def _flag(argv: list[str], name: str) -> str | None:
    """The value of tritonserver's ``--name=value`` or ``--name value``."""
    for index, argument in enumerate(argv):
        if argument.startswith(f"{name}="):
            return argument.split("=", 1)[1]
        if argument == name and index + 1 < len(argv):
            return argv[index + 1]
    return None


def _python_based_backends(server_pid: int, argv: list[str]) -> set[str]:
    """The backends of the server's backend folder that are Python-based (a ``model.py``: the local
    onnxruntime shim), read through ``/proc/<pid>/root`` or ``cwd`` so that its own view of the files counts;
    empty where that is not readable."""
    folder = _flag(argv, "--backend-directory") or DEFAULT_BACKEND_DIRECTORY
    base = Path("/proc") / str(server_pid) / ("root" if folder.startswith("/") else "cwd")
    try:
        return {d.name for d in (base / folder.lstrip("/")).iterdir() if (d / contract.PYTHON_MODEL_FILE).is_file()}
    except OSError:
        return set()


def find(grpc_port: int) -> Stubs | None:
    """The live stubs of the tritonserver listening for gRPC on ``grpc_port`` (the port its control client
    uses); None when no single such server is visible (another PID namespace, or not running)."""
    processes = list(_processes())
    servers = [
        p
        for p in processes
        if Path(p[0]).name == SERVER_BINARY and int(_flag(p[:-1], "--grpc-port") or DEFAULT_GRPC_PORT) == grpc_port
    ]
    if len(servers) != 1:
        return None
    server_pid = int(servers[0][-1])
    stubs = [p for p in processes if p[0].endswith(STUB_BINARY) and len(p) > _RUNTIME + 1]
    mine = [p for p in stubs if p[_PARENT] == str(server_pid)]
    python_based = {Path(p[_RUNTIME]).name for p in mine if p[_RUNTIME] != PYTHON_MODEL_RUNTIME}
    return Stubs(
        server_pid,
        {int(p[-1]): p[_INSTANCE] for p in mine},
        frozenset(python_based | _python_based_backends(server_pid, servers[0][:-1])),
    )


def _started(pid: int) -> float:
    """When a process started (seconds since the epoch); 0 if it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def instance_names(config: dict) -> set[str]:
    """The instance names Triton gives a model's instances (``<group name>_<index>``), from its config (JSON)."""
    names = set()
    for group in config.get("instance_group", []):
        count = int(group.get("count", 1))
        if group.get("kind") == "KIND_GPU":
            count *= max(1, len(group.get("gpus", [])))
        names.update(f"{group['name']}_{index}" for index in range(count))
    return names


def runs_in_stubs(config: dict, stubs: Stubs) -> bool:
    """Whether a model's instances are stub processes: a Python model, or a backend that is Python-based here
    (the local onnxruntime shim; Triton's native onnxruntime backend runs in-process and has none)."""
    backend = config.get("backend", "")
    return backend == "python" or backend in stubs.python_based_backends
