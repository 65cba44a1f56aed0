"""Local mode: the pip tritonserver plus the gateway, started together, stopped together on Ctrl-C."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from local_triton.services import GatewayProcess, LoaderProcess, ServiceStartError
from local_triton.tritonserver import LocalTriton, Ports, TritonStartError, http_ok, ports_in_use
from model_store import location
from model_store.sync import SYNC_INTERVAL_S, Sync
from triton_control import TritonControl
from triton_steps import contract


def _example(url: str) -> str:
    samples = sorted(Path("samples").glob("*.wav")) if Path("samples").is_dir() else []
    clip = samples[0] if samples else Path("clip.wav")
    return f"curl -s --data-binary @{clip} {url}/"


log = logging.getLogger("local_triton")
DEFAULT_CHECKPOINT = Path("keyword_spotter/checkpoint")
RESTART_BACKOFF_S = (1.0, 30.0)  # first and longest wait before restarting a tritonserver or gateway that died
DEFAULT_NAME = "keyword-spotter"


EXPORT_TOOLCHAIN = ("torch", "transformers")  # what exporting needs beyond serving (`make export` installs it)


def require_export_toolchain(why: str) -> None:
    """``ServiceStartError`` saying how to install it when the export toolchain is missing: serving alone
    (``make serve``) installs no torch."""
    missing = [module for module in EXPORT_TOOLCHAIN if importlib.util.find_spec(module) is None]
    if missing:
        raise ServiceStartError(
            f"{why} needs the export toolchain ({', '.join(missing)} not installed): `make export` installs it, "
            "and `make serve` does when GATEWAY_AUTOLOAD is set in its environment"
        )


def ensure_model(repository: Path | None) -> None:
    """An empty local repository gets the project's default model, exported from its committed checkpoint."""
    if (
        repository is None
        or any((p / contract.CONFIG_FILE).is_file() for p in repository.glob("*"))
        or not DEFAULT_CHECKPOINT.is_dir()
    ):
        return
    require_export_toolchain(f"{repository} holds no model: exporting the default model")
    from export.exporter import ExportOptions, export_model  # torch + transformers: only when needed

    log.info("%s holds no model: exporting the default model from %s", repository, DEFAULT_CHECKPOINT)
    export_model(str(DEFAULT_CHECKPOINT), repository, ExportOptions(name=DEFAULT_NAME))


@dataclass
class Backoff:
    """Restarts of one process: wait ``delay``, doubling (up to ``longest``) while restarts fail."""

    first: float
    longest: float
    delay: float = field(init=False)

    def __post_init__(self) -> None:
        self.delay = self.first

    def restart(self, start: Callable[[], object], what: str) -> None:
        time.sleep(self.delay)
        try:
            start()
        except (TritonStartError, ServiceStartError) as error:
            log.error("restarting %s failed: %s", what, error)
            self.delay = min(self.delay * 2, self.longest)
            return
        log.warning("%s restarted", what)
        self.delay = self.first


def default_model(repository: Path | None, chosen: str) -> str:
    """The model ``POST /`` uses: the one chosen, else the shipped keyword spotter where the repository holds
    it (so that exporting a second model beside it keeps ``POST /`` working), else none (the gateway then
    takes the only model served)."""
    if chosen or repository is None or not (repository / DEFAULT_NAME / contract.CONFIG_FILE).is_file():
        return chosen
    return DEFAULT_NAME


@dataclass
class Stack:
    """The processes of ``make serve``: tritonserver, the repository's sync, the gateway and (on demand) the
    loader; started in order, each restarted with a backoff if it dies, stopped in order."""

    triton: LocalTriton
    gateway: GatewayProcess
    loader: LoaderProcess | None
    sync_interval_s: float
    timeout_s: float
    autoload: str = ""  # the gateway's GATEWAY_AUTOLOAD: what the loader may export
    sync: Sync | None = None
    backoffs: dict[str, Backoff] = field(default_factory=dict)

    def _backoff(self, what: str) -> Backoff:
        return self.backoffs.setdefault(what, Backoff(*RESTART_BACKOFF_S))

    def start(self) -> bool:
        """Start everything; whether the gateway became ready within the timeout. A port in use stops it at
        once, before Triton starts (which takes seconds to minutes)."""
        ports = self.triton.ports
        wanted = {"HTTP_PORT": ports.http, "GRPC_PORT": ports.grpc, "METRICS_PORT": ports.metrics}
        wanted["GATEWAY_PORT"] = self.gateway.port
        if self.loader is not None:
            wanted["LOADER_PORT"] = self.loader.port
        busy = ports_in_use(self.triton.host, wanted)
        if busy:
            log.error("ports in use: %s; free them or choose others (make serve GATEWAY_PORT=...)", ", ".join(busy))
            return False
        log.info("starting tritonserver on %s (HTTP %d, gRPC %d) ...", self.triton.host, ports.http, ports.grpc)
        self.triton.start(timeout=self.timeout_s)
        # Models exported (or re-exported) into the repository from now on are loaded without a restart.
        self.sync = Sync(self.triton.repository, TritonControl(self.triton.grpc_url), self.sync_interval_s).start()
        if self.loader is not None:
            self.loader.start()
            log.info("on-demand loading of %s (loader log: %s)", self.autoload, self.loader.log_path)
        self.gateway.start()
        deadline = time.monotonic() + self.timeout_s
        while not http_ok(f"{self.gateway.url}/ready"):
            if not self.gateway.running() or time.monotonic() > deadline:
                log.error("the gateway did not become ready; see %s", self.gateway.log_path)
                return False
            time.sleep(0.2)
        return True

    def watch(self) -> None:
        """Restart whatever died (one look)."""
        triton, gateway, loader = self.triton, self.gateway, self.loader
        if triton.process is not None and triton.process.poll() is not None:
            # The gateway answers 503 + Retry-After meanwhile, and reconnects by itself.
            regions, backoff = triton.clean_up(), self._backoff("tritonserver")
            log.warning(
                "tritonserver exited (%s); removed what it left behind (%d shared-memory regions); restarting in %gs",
                triton.process.returncode,
                len(regions),
                backoff.delay,
            )
            backoff.restart(lambda: triton.start(timeout=self.timeout_s), "tritonserver")
        if not gateway.running():
            # Clients get connection refused meanwhile; a load balancer in front moves them elsewhere.
            code, backoff = gateway.process.returncode if gateway.process else None, self._backoff("the gateway")
            log.warning("the gateway exited (%s; see %s); restarting in %gs", code, gateway.log_path, backoff.delay)
            backoff.restart(gateway.start, "the gateway")
        if loader is not None and not loader.running():
            backoff = self._backoff("the loader")
            log.warning("the loader exited (see %s); restarting in %gs", loader.log_path, backoff.delay)
            backoff.restart(loader.start, "the loader")

    def stop(self) -> None:
        log.info("stopping ...")
        if self.sync is not None:
            self.sync.stop()
        # The gateway first: its open gRPC connection would make tritonserver wait out its exit timeout.
        self.gateway.stop()
        if self.loader is not None:
            self.loader.stop()
        self.triton.stop()
        log.info("stopped.")


def build(args: argparse.Namespace) -> Stack:
    """The stack ``args`` describe; the gateway's own settings (``GATEWAY_*``) read through ``gateway.settings``."""
    from gateway.settings import Settings  # not in the slim Triton image, which runs `local_triton install`

    repository, settings = args.repository, Settings()
    ensure_model(repository.path)
    if settings.autoload_patterns():
        require_export_toolchain(f"GATEWAY_AUTOLOAD={settings.autoload}")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    triton = LocalTriton(repository, workdir, Ports(args.http_port, args.grpc_port, args.metrics_port))
    # GATEWAY_AUTOLOAD set: the loader exports the Hub ids it allows on first request (its port in the gateway's
    # GATEWAY_LOADER_URL); otherwise no loader runs and an unknown id stays a 404.
    loader = (
        LoaderProcess(str(repository), args.loader_port, workdir / "loader.log", triton.host)
        if settings.autoload_patterns()
        else None
    )
    gateway = GatewayProcess(
        triton.grpc_url,
        args.gateway_port,
        workdir / "gateway.log",
        triton.host,
        inherit=True,
        default_model=default_model(repository.path, args.default_model or settings.default_model),
        loader_url=loader.url if loader is not None else "",
    )
    return Stack(triton, gateway, loader, args.sync_interval, args.timeout, settings.autoload)


def serve(args: argparse.Namespace) -> int:
    try:
        stack = build(args)
    except ServiceStartError as error:
        log.error("error: %s", error)
        return 1

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, on_signal)
    # Python turns SIGINT into KeyboardInterrupt only where its parent had not ignored it, and a shell starts a
    # script's background jobs with SIGINT ignored: Ctrl-C (or kill -INT) must stop the stack wherever it started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if not stack.start():
            return 1
        url = stack.gateway.url
        log.info("ready: %s  (docs: %s/docs, Triton log: %s)", url, url, stack.triton.log_path)
        log.info("try:   %s", _example(url))
        log.info("Ctrl-C stops both; either is restarted if it dies.")
        while True:
            stack.watch()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except (TritonStartError, ServiceStartError) as error:
        log.error("error: %s", error)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


class _QuietStream(logging.StreamHandler):
    """A handler that keeps going when its reader has gone (``make serve | head``, a closed pipe): the
    clean-up must finish."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def configure_logging() -> None:
    """make serve's lines (and the sync's and the healer's between them) as plain lines: progress on stdout,
    warnings and errors on stderr."""
    out, err = _QuietStream(sys.stdout), _QuietStream(sys.stderr)
    out.addFilter(_Below(logging.WARNING))
    err.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[out, err], force=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    location.add_repository_argument(parser, "the repository to serve")
    parser.add_argument("--workdir", default=".run", help="where backends and logs go (default: .run)")
    parser.add_argument(
        "--sync-interval",
        type=float,
        default=SYNC_INTERVAL_S,
        help=f"seconds between reads of the repository's manifest (default: {SYNC_INTERVAL_S:g})",
    )
    parser.add_argument("--http-port", type=int, default=contract.TRITON_HTTP_PORT)
    parser.add_argument("--grpc-port", type=int, default=contract.TRITON_GRPC_PORT)
    parser.add_argument("--metrics-port", type=int, default=contract.TRITON_METRICS_PORT)
    parser.add_argument("--gateway-port", type=int, default=contract.DEFAULT_GATEWAY_PORT)
    parser.add_argument(
        "--loader-port",
        type=int,
        default=contract.DEFAULT_LOADER_PORT,
        help="the on-demand loader's, with GATEWAY_AUTOLOAD",
    )
    parser.add_argument(
        "--default-model",
        default="",
        help=f"the model POST / uses (default: GATEWAY_DEFAULT_MODEL; else {DEFAULT_NAME} if the repository "
        "holds it, else the only model served)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for readiness")
