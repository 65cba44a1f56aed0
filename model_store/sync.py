"""Keep a Triton in explicit model-control mode in step with a repository's manifest.

Every ``interval`` seconds: read ``published.json``; (re)load, through Triton's repository API, each model
whose revision changed (its steps first, then the ensemble: Triton swaps a reloaded model in only once the
new one is ready, so requests in flight finish on the old one); unload each ensemble that left the manifest;
then reload a step whose Python stub process died (``stub_health.healer``). On-demand exports (the loader's)
are left to the gateway, which loads them when asked and unloads them when idle.
``make serve`` runs it in a thread, docker compose as a service, Kubernetes as a sidecar of each Triton pod:
it always talks to its own Triton.
"""

from __future__ import annotations

import logging
import threading

from model_store import manifest
from model_store.location import Location
from model_store.s3 import StorageError
from stub_health.healer import ORPHAN_GRACE_S, StubHealer
from triton_control import TritonControl, TritonError

log = logging.getLogger("model_store.sync")
SYNC_INTERVAL_S = 5.0  # how often the manifest is read (and the stubs checked): every launcher's default


class Sync:
    """Applies manifest changes to one Triton; ``step()`` once, or ``start()`` a background thread."""

    def __init__(
        self,
        location: Location,
        triton: TritonControl,
        interval_s: float = SYNC_INTERVAL_S,
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
            self.applied = {n: e.revision for n, e in entries.items() if self.triton.model_ready(n)}
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
            except TritonError as error:
                log.warning(f"could not load {name}: {error}")
        for name in sorted(set(self.applied) - set(entries)):
            del self.applied[name]
            changed.append(name)
            try:
                self.triton.unload_export(name)
                log.info(f"unloaded {name} (no longer published)")
            except TritonError as error:
                log.warning(f"could not unload {name}: {error}")
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
                self.healer.check()
            except (StorageError, TritonError, OSError, ValueError) as error:  # briefly away: next round
                log.warning(f"repository sync: {error}")

    def start(self) -> Sync:
        self._thread = threading.Thread(target=self._run, name="model-store-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
