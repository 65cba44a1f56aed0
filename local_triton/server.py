"""Start, wait for and stop the tritonserver of the ``nvidia-pytriton`` wheel."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from local_triton import view

EXIT_TIMEOUT_S = 5


class TritonStartError(RuntimeError):
    """tritonserver did not become ready; the message carries the end of its log."""


@dataclass(frozen=True)
class Ports:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002


def wheel_dir() -> Path:
    """The wheel's ``tritonserver`` folder (found without importing pytriton and its dependencies)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonStartError("nvidia-pytriton is not installed: pip install --no-deps nvidia-pytriton==0.7.0")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def backend_dir(target: Path) -> Path:
    """A backend folder whose python/ holds SYMLINKS to the wheel's Python backend and this Python's stub.

    Symlinks, not copies: a copied stub loses its relative rpath to libcudart and the server hangs.
    """
    wheel = wheel_dir()
    python = target / "python"
    python.mkdir(parents=True, exist_ok=True)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    links = {
        "libtriton_python.so": wheel / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": wheel / "backends" / "python" / "triton_python_backend_utils.py",
        "triton_python_backend_stub": wheel / "python_backend_stubs" / version / "triton_python_backend_stub",
    }
    for name, source in links.items():
        link = python / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return target


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # The stub's embedded Python ignores PYTHONPATH and finds site-packages through `python3` on PATH:
    # put this interpreter's environment first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether GET ``url`` answers 200 (a readiness probe)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class LocalTriton:
    """A tritonserver process serving a view of ``repository``; use as a context manager."""

    def __init__(self, repository: Path, workdir: Path, ports: Ports = Ports(), host: str = "127.0.0.1") -> None:
        self.repository = repository
        self.workdir = workdir
        self.ports = ports
        self.host = host
        self.log_path = workdir / "tritonserver.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    def command(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        models = view.build(self.repository.resolve(), self.workdir / "repository")
        if not models:
            raise TritonStartError(f"{self.repository} holds no model (export one: python -m export SOURCE)")
        return [
            str(wheel_dir() / "bin" / "tritonserver"),
            f"--model-repository={self.workdir / 'repository'}",
            f"--backend-directory={backend_dir(self.workdir / 'backends')}",
            f"--http-address={self.host}",
            f"--http-port={self.ports.http}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.ports.metrics}",
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
            "--log-verbose=0",
        ]

    def start(self, timeout: float = 180.0) -> LocalTriton:
        command = self.command()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=_environment(), start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TritonStartError(f"tritonserver exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.25)
        self.stop()
        raise TritonStartError(f"tritonserver not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def ready(self) -> bool:
        return http_ok(f"http://{self.http_url}/v2/health/ready")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it outlives its exit timeout; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(EXIT_TIMEOUT_S + 10)
        except subprocess.TimeoutExpired:
            code = None
        # The server runs in its own process group with its Python stubs: leave none of them behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait() if code is None else code

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> LocalTriton:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
