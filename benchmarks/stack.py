"""The served stack as ``make serve`` runs it, for the benchmarks: tritonserver, the model sync with its stub
healer beside it, and the gateway; yielded once the gateway is ready."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, Ports, free_port, http_ok
from model_store import location
from model_store.sync import Sync
from triton_control import TritonControl

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def served(repository: Path, workdir: Path, **gateway_settings: str) -> Iterator[tuple[LocalTriton, GatewayProcess]]:
    """Serve ``repository`` (logs in ``workdir``) until the block ends."""
    with (
        LocalTriton(repository, workdir, Ports(free_port(), free_port(), free_port())) as triton,
        GatewayProcess(triton.grpc_url, free_port(), workdir / "gateway.log", **gateway_settings) as gateway,
    ):
        sync = Sync(location.parse(repository), TritonControl(triton.grpc_url)).start()
        try:
            while not http_ok(f"{gateway.url}/ready"):
                time.sleep(0.5)
            yield triton, gateway
        finally:
            sync.stop()
