"""Find Python stubs that died (an OOM kill, a crash) and reload their models, without running any model.

tritonserver 2.51 never restarts a dead stub: the model stays "ready" and fails every request with "Stub
process '<model>_<group>_<index>' is not healthy". Each round compares the instances every ready
stub-backed model should have (from its config) with the stub processes alive (``stub_health.processes``)
and reloads a model that lost one (fresh instances, swapped in when ready); an old instance's stub that
outlives its reload (orphaned) is removed.

Why processes, not probe requests: a probe runs the whole model (a full 1.4 s forward pass for AST base every
round), competes with real requests, and cannot tell a slow answer from a dead stub. Listing processes costs
the same for any model size and never mistakes a busy or stopped stub for a dead one. This runs beside each
Triton (run by ``model_store.sync``), so it heals the right replica, traffic or not; where it cannot see Triton's
processes it says so once and leaves healing to the gateway, which reloads on the first failing request.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from stub_health import processes as stub_processes
from triton_control import TritonControl
from triton_control.channel import port_of

log = logging.getLogger("stub_health.healer")

CONFIRM_AFTER_S = 0.2  # a missing stub is looked for again after this: a model unloaded meanwhile is not dead


# A reloaded model's old stubs leave once their last request is done; one still there this long after a newer
# stub took its instance name is orphaned (seen when a sibling stub crashed under load) and is killed. Longer
# than the gateway's inference timeout (30 s): no client can still be waiting on it.
ORPHAN_GRACE_S = 60.0


class StubHealer:
    def __init__(self, triton: TritonControl, orphan_grace_s: float = ORPHAN_GRACE_S) -> None:
        self.triton = triton
        self.orphan_grace_s = orphan_grace_s
        self.grpc_port = port_of(triton.url) or stub_processes.DEFAULT_GRPC_PORT
        self._configs: dict[str, dict] = {}  # model -> its config while it stays ready
        self._blind = False  # said once: Triton's processes are not visible from here
        self._superseded: dict[int, float] = {}  # pid of an old stub -> when a newer one was first seen
        self._unkillable: set[int] = set()  # orphans this process may not kill: said once, not tried again

    def forget(self, model: str) -> None:
        """Drop what is cached of ``model`` (it was loaded again: its instances may differ)."""
        self._configs.pop(model, None)

    def _ready(self) -> set[str]:
        ready = {entry.name for entry in self.triton.index() if entry.ready}
        for model in set(self._configs) - ready:
            del self._configs[model]
        return ready

    def _missing(self, ready: set[str], stubs: stub_processes.Stubs) -> dict[str, set[str]]:
        """model -> the instances of it that have no live stub."""
        missing, alive = {}, stubs.instances
        for model in sorted(ready):
            if model not in self._configs:
                self._configs[model] = self.triton.config(model)
            config = self._configs[model]
            if stub_processes.runs_in_stubs(config, stubs):
                lost = stub_processes.instance_names(config) - alive
                if lost:
                    missing[model] = lost
        return missing

    def check(self) -> list[str]:
        """Reload every ready model that lost a stub process; returns those reloaded."""
        stubs = stub_processes.find(self.grpc_port)
        if stubs is None:
            if not self._blind:
                log.info(
                    f"stub health: no tritonserver on gRPC port {self.grpc_port} is visible from here (share its "
                    "PID namespace); dead stubs are reloaded by the gateway on their next request instead"
                )
                self._blind = True
            return []
        self._blind = False
        self._remove_orphans(stubs)
        suspects = self._missing(self._ready(), stubs)
        if not suspects:
            return []
        time.sleep(CONFIRM_AFTER_S)  # look again: an unload or reload in progress is not a death
        stubs = stub_processes.find(self.grpc_port)
        if stubs is None:
            return []
        confirmed = self._missing(self._ready() & set(suspects), stubs)
        for model, lost in confirmed.items():
            self.triton.reload(model)
            self.forget(model)
            log.info(f"reloaded {model}: its stub {', '.join(sorted(lost))} had died")
        return sorted(confirmed)

    def _remove_orphans(self, stubs: stub_processes.Stubs) -> None:
        now = time.monotonic()
        superseded = {pid: name for pid, name in stubs.superseded().items() if pid not in self._unkillable}
        self._superseded = {pid: self._superseded.get(pid, now) for pid in superseded}
        for pid, since in self._superseded.items():
            if now - since >= self.orphan_grace_s:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError as error:  # gone meanwhile, or not ours to kill
                    self._unkillable.add(pid)
                    log.warning(f"could not remove the orphaned stub {superseded[pid]} (pid {pid}): {error}")
                    continue
                log.info(f"removed an orphaned stub of {superseded[pid]} (pid {pid}): a reloaded model's old instance")
