"""Keep a Triton in explicit model-control mode in step with a repository's manifest.

Every ``interval`` seconds: read ``published.json``; (re)load, through Triton's repository API, each model
whose revision changed (its steps first, then the ensemble: Triton swaps a reloaded model in only once the
new one is ready, so requests in flight finish on the old one); unload each ensemble that left the manifest;
then reload a step whose Python stub process died (``model_store.heal``). On-demand exports (the loader's)
are left to the gateway, which loads them when asked and unloads them when idle.
``make serve`` runs it in a thread, docker compose as a service, Kubernetes as a sidecar of each Triton pod:
it always talks to its own Triton.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request

from model_store import manifest
from model_store.heal import ORPHAN_GRACE_S, StubHealer
from model_store.location import Location
from model_store.s3 import StorageError
from triton_steps.stub_health import with_reload_marker

log = logging.getLogger("model_store.sync")


class TritonRepository:
    """Triton's HTTP repository API: load, unload, readiness."""

    def __init__(self, http_url: str, timeout_s: float = 600.0) -> None:
        self.base = http_url if "://" in http_url else f"http://{http_url}"
        self.timeout_s = timeout_s

    def _post(self, path: str, body: dict | None = None) -> bytes:
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(f"{self.base}{path}", data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise RuntimeError(f"POST {path}: HTTP {error.code} {detail}") from None

    def index(self) -> list[dict]:
        """Every model of the repository, with its state."""
        return json.loads(self._post("/v2/repository/index") or b"[]")

    def config(self, model: str) -> dict:
        with urllib.request.urlopen(f"{self.base}/v2/models/{model}/config", timeout=30) as response:
            return json.loads(response.read())

    def reload(self, model: str) -> None:
        """Load fresh instances of a loaded model: its config passed back with a marker parameter (Triton
        treats loading an unchanged model as a no-op, which would keep a dead stub)."""
        config = with_reload_marker(self.config(model))
        self._post(f"/v2/repository/models/{model}/load", {"parameters": {"config": json.dumps(config)}})

    def load(self, model: str) -> None:
        self._post(f"/v2/repository/models/{model}/load")

    def unload(self, model: str) -> None:
        self._post(f"/v2/repository/models/{model}/unload", {"parameters": {"unload_dependents": True}})

    def ready(self, model: str) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/v2/models/{model}/ready", timeout=10) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False


class Sync:
    """Applies manifest changes to one Triton; ``step()`` once, or ``start()`` a background thread."""

    def __init__(
        self,
        location: Location,
        triton: TritonRepository,
        interval_s: float = 5.0,
        orphan_grace_s: float = ORPHAN_GRACE_S,
    ) -> None:
        self.location = location
        self.triton = triton
        self.interval_s = interval_s
        self.applied: dict[str, str] | None = None  # ensemble -> revision loaded; None before the first step
        self.healer = StubHealer(triton, orphan_grace_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> list[str]:
        """Apply the manifest once; returns the ensembles it loaded or unloaded."""
        entries = manifest.read(self.location)
        if self.applied is None:  # Triton started with --load-model=*: what is ready is current
            self.applied = {n: e.revision for n, e in entries.items() if self.triton.ready(n)}
        changed = []
        for name, entry in entries.items():
            # On-demand exports are loaded by the gateway when asked (and unloaded when idle): not here.
            if entry.on_demand or self.applied.get(name) == entry.revision:
                continue
            self.applied[name] = entry.revision  # tried once per revision, even if it fails to load
            changed.append(name)
            try:
                for model in entry.models:
                    self.triton.load(model)
                    self.healer.forget(model)
                log.info(f"loaded {name} (revision {entry.revision})")
            except (RuntimeError, OSError) as error:
                log.warning(f"could not load {name}: {error}")
        for name in sorted(set(self.applied) - set(entries)):
            del self.applied[name]
            changed.append(name)
            try:
                self.triton.unload(name)
                log.info(f"unloaded {name} (no longer published)")
            except (RuntimeError, OSError) as error:
                log.warning(f"could not unload {name}: {error}")
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
                self.healer.check()
            except (StorageError, OSError, ValueError, RuntimeError) as error:  # briefly away: next round
                log.warning(f"repository sync: {error}")

    def start(self) -> Sync:
        self._thread = threading.Thread(target=self._run, name="model-store-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
