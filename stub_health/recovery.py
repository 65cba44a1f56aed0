"""The gateway's side of stub health: a request that meets a dead stub starts a reload of its model.

The first request that meets the dead stub starts a reload of that model (``triton_control``'s ``reload``:
Triton loads fresh instances and swaps them in) and is answered 503 with Retry-After, as is every request
until the reload is done; ``/ready`` says which models recover. Where the healer (``stub_health.healer``)
sees Triton's processes it usually reloads the model before any request meets it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from stub_health.detect import dead_instance, model_of
from triton_control import AsyncTritonControl, TritonError

log = logging.getLogger("stub_health.recovery")


class StubRecovery:
    """Reloads the model of a dead stub once per death; ``recovering`` names the models being reloaded."""

    def __init__(self, client: AsyncTritonControl, on_reload: Callable[[str], None]) -> None:
        self.client = client
        self.on_reload = on_reload  # told each model it reloaded (the gateway's metrics)
        self.recovering: dict[str, asyncio.Task[None]] = {}
        self.reloaded_at: dict[str, float] = {}  # model -> time.monotonic() its last reload finished

    async def _reload(self, model: str) -> None:
        started = time.monotonic()
        try:
            await self.client.reload(model)
            self.reloaded_at[model] = time.monotonic()
            self.on_reload(model)
            log.info("reloaded %s after its stub died, in %.2fs", model, time.monotonic() - started)
        except TritonError as error:
            log.warning("could not reload %s: %s", model, error.message)
        finally:
            self.recovering.pop(model, None)

    async def begin(self, error: TritonError, request_started: float) -> str | None:
        """If ``error`` says a stub died: start reloading its model (once) and return the step's name; else None.

        A request sent (``time.monotonic()``) before the last reload finished met the old, dead stub: it starts
        no new reload."""
        instance = dead_instance(error.message)
        if instance is None:
            return None
        try:
            served = {entry.name for entry in await self.client.index()}
        except TritonError as failure:  # Triton itself failing too: the request is still told the step died (503)
            log.warning("could not list models to reload %s's: %s", instance, failure.message)
            return instance
        model = model_of(instance, served)
        if model is None:
            return instance
        stale = self.reloaded_at.get(model, -float("inf")) > request_started
        if model not in self.recovering and not stale:
            self.recovering[model] = asyncio.create_task(self._reload(model))
        return model
