"""The stack's Python services as child processes: the gateway (``python -m gateway``) and the on-demand loader
(``python -m loader``). The one way ``make serve``, the benchmarks and the tests run them beside a
``LocalTriton``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from local_triton.tritonserver import http_ok, log_tail


class ServiceStartError(RuntimeError):
    """A service process exited or did not answer in time; the message carries the end of its log."""


class ServiceProcess:
    """``python -m MODULE`` with ``env``, its output in ``log_path``; ready when ``url``/health answers."""

    module = ""

    def __init__(self, host: str, port: int, log_path: Path, env: dict[str, str]) -> None:
        self.port = port
        self.url = f"http://{host}:{port}"
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        """Start it (after whatever its previous run left) and wait until ``/health`` answers."""
        self._kill_group()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Appended to: a restart keeps the earlier lines, and a process of the previous run still writing
        # cannot leave a hole of NUL bytes in it (as a truncated file written at its old offset does).
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not http_ok(f"{self.url}/health", timeout=1):
            if not self.running() or time.monotonic() > deadline:
                self.stop()
                raise ServiceStartError(f"the {self.module} did not start; its log ends:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it, and every process it started (its session: a loader's exports, a gateway's workers)."""
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._kill_group()

    def _kill_group(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing of it is left
                os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GatewayProcess(ServiceProcess):
    """The gateway on ``host:port`` in front of Triton's gRPC ``triton_url``; ``settings`` are gateway settings
    by name (``default_model="x"`` becomes ``GATEWAY_DEFAULT_MODEL=x``). With ``inherit`` (what ``make serve``
    does) the caller's own ``GATEWAY_*`` variables pass through, so that a token or a cap set in the
    environment is enforced; without it (tests, benchmarks) every other setting is unset."""

    module = "gateway"

    def __init__(
        self,
        triton_url: str,
        port: int,
        log_path: Path,
        host: str = "127.0.0.1",
        inherit: bool = False,
        **settings: str,
    ) -> None:
        from gateway.settings import Settings  # pydantic: not in the slim Triton image, which imports this package

        unknown = set(settings) - set(Settings.model_fields)
        if unknown:  # a misspelt setting would otherwise be passed on and silently ignored
            raise TypeError(f"not gateway settings: {', '.join(sorted(unknown))}")
        env = {key: value for key, value in os.environ.items() if inherit or not key.startswith("GATEWAY_")}
        env.update(GATEWAY_TRITON_URL=triton_url, GATEWAY_HOST=host, GATEWAY_PORT=str(port))
        env.update({f"GATEWAY_{key.upper()}": value for key, value in settings.items() if value})
        super().__init__(host, port, log_path, env)


class LoaderProcess(ServiceProcess):
    """The loader on ``host:port``, exporting into ``repository``; the ``LOADER_*`` and ``HF_*`` variables of
    the environment apply, and ``env_vars`` over them."""

    module = "loader"

    def __init__(self, repository: str, port: int, log_path: Path, host: str = "127.0.0.1", **env_vars: str) -> None:
        env = dict(os.environ, MODEL_REPOSITORY=repository, LOADER_HOST=host, LOADER_PORT=str(port))
        env.setdefault("LOADER_STATE_DIR", str(log_path.parent / "loader"))  # beside its log: make serve's WORKDIR
        env.update(env_vars)
        super().__init__(host, port, log_path, env)
