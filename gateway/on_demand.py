"""Models loaded on demand (``GATEWAY_AUTOLOAD``), and the bound on how many are loaded at once.

A request for an allowed Hub id that Triton does not serve gets the HF API's loading answer (503 with
``estimated_time``) while the loader exports it; once it is in the repository the gateway loads it through
Triton. At most ``max_loaded_models`` on-demand models are loaded: for a new one, the least recently used one
with no request in flight is unloaded (it stays in the repository, and comes back in seconds, without an
export). Models an operator published, the default model and pinned ids are never unloaded.

In-flight counts and use times are this worker's: with several gateway workers or replicas in front of one
Triton, a model one of them unloads while another has requests on it lets those finish (Triton drains a model
before it unloads it); later ones get the loading answer and load it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.errors import Loading, NotFound, Refused, Unavailable
from gateway.loader_client import LoaderClient
from gateway.metrics import Metrics
from gateway.schemas import ModelState
from gateway.settings import Settings
from gateway.triton import Triton
from triton_steps.contract import ExportState
from triton_steps.metadata import ModelMetadata

log = logging.getLogger("gateway.on_demand")

PRIOR_LOAD_S = 3.0  # a load's estimate before one was measured (a tiny model here: about 1 s; base size: 3 s)
LOAD_RETRY_S = 30.0  # a model Triton failed to load is tried again after this
MAX_REMEMBERED = 256  # ids whose state /models shows (failed ones first forgotten)


@dataclass
class OnDemandModel:
    model_id: str
    state: ModelState
    name: str = ""  # its Triton name, once the loader said
    error: str = ""
    since: float = 0.0  # time.monotonic() of the last state change


class OnDemand:
    """The gateway's view of on-demand models; one per app, created in the lifespan."""

    def __init__(self, settings: Settings, triton: Triton, loader: LoaderClient, metrics: Metrics) -> None:
        self.patterns = settings.autoload_patterns()
        self.pinned = settings.pinned() | {settings.default_model}
        self.limit = settings.max_loaded_models
        self.triton, self.loader, self.metrics = triton, loader, metrics
        self.models: OrderedDict[str, OnDemandModel] = OrderedDict()  # model id -> its state
        self.last_used: dict[str, float] = {}  # Triton name -> time.monotonic() of its last request
        self.in_flight: dict[str, int] = {}  # Triton name -> requests on it now
        self._loads: dict[str, asyncio.Task[None]] = {}  # Triton name -> its load in progress
        self._evicting: set[str] = set()
        self._room = asyncio.Lock()  # one eviction-and-load decision at a time
        self._load_s = PRIOR_LOAD_S

    def allowed(self, model_id: str) -> bool:
        return any(fnmatch.fnmatchcase(model_id, pattern) for pattern in self.patterns)

    def _set(self, model_id: str, state: ModelState, name: str = "", error: str = "") -> OnDemandModel:
        entry = OnDemandModel(model_id, state, name, error, time.monotonic())
        self.models[model_id] = entry
        self.models.move_to_end(model_id)
        while len(self.models) > MAX_REMEMBERED:
            self.models.popitem(last=False)
        return entry

    async def resolve(self, model_id: str | None, default_model: str) -> ModelMetadata:
        """The served model a request names; for an allowed Hub id that is not loaded, the HF API's loading
        answer (``Loading``, with ``estimated_time``) while it is exported or loaded, or its refusal."""
        try:
            model = await self.triton.resolve(model_id, default_model)
        except NotFound:
            if not model_id or not self.allowed(model_id):
                raise
            raise await self._miss(model_id) from None
        if model.on_demand:
            if model.name in self._evicting:
                raise Loading(model.model_id, self._load_s)
            self.last_used.setdefault(model.name, time.monotonic())
            entry = self.models.get(model.model_id)
            if entry is None or entry.state != ModelState.LOADED:
                self._set(model.model_id, ModelState.LOADED, model.name)
        return model

    async def _miss(self, model_id: str) -> Loading | Unavailable | Refused:
        entry = self.models.get(model_id)
        if entry is not None and entry.name in self._loads:
            return Loading(model_id, self._load_s)
        recently_failed = entry is not None and entry.state == ModelState.FAILED and entry.name
        if recently_failed and time.monotonic() - entry.since < LOAD_RETRY_S:
            return Unavailable(entry.error)
        try:
            answer = await self.loader.request(model_id)
        except Unavailable as error:  # the loader busy or away: nothing to remember
            return error
        except Refused as error:
            self._set(model_id, ModelState.FAILED, error=error.message)
            return error
        self._set(model_id, ModelState.LOADING, answer.name)
        if answer.state == ExportState.EXPORTED:  # in the repository: the gateway loads it (estimated_time is 0)
            self._start_load(model_id, answer.name)
        return Loading(model_id, answer.estimated_time + self._load_s)

    def _start_load(self, model_id: str, name: str) -> None:
        if name not in self._loads:
            task = asyncio.create_task(self._load(model_id, name))
            self._loads[name] = task
            task.add_done_callback(lambda _: self._loads.pop(name, None))

    async def _load(self, model_id: str, name: str) -> None:
        started = time.monotonic()
        try:
            async with self._room:
                if not await self._make_room(keep=name):  # every loaded model is busy: the next request tries again
                    self._set(model_id, ModelState.UNLOADED, name)
                    return
                await self.triton.load(name)
        except Unavailable as error:
            log.warning("could not load %s: %s", model_id, error.message)
            self._set(model_id, ModelState.FAILED, name, error.message)
            return
        seconds = time.monotonic() - started
        self._load_s = 0.5 * self._load_s + 0.5 * seconds
        self.last_used[name] = time.monotonic()
        self.metrics.on_demand_loads.inc()
        self.metrics.on_demand_load_seconds.observe(seconds)
        self._set(model_id, ModelState.LOADED, name)
        log.info("loaded %s (%s) in %.1fs", model_id, name, seconds)

    def _loaded(self, served: dict[str, ModelMetadata]) -> list[ModelMetadata]:
        return [m for m in served.values() if m.on_demand and not self.pinned & {m.name, m.model_id}]

    async def _make_room(self, keep: str, room: int = 1) -> bool:
        """Unload least recently used idle on-demand models until ``room`` more fit; False if too few could go."""
        loaded = [m for m in self._loaded((await self.triton.models(force=True)).served) if m.name != keep]
        loaded.sort(key=lambda m: self.last_used.get(m.name, 0.0))
        excess = len(loaded) + room - self.limit
        for model in loaded:
            if excess <= 0:
                break
            if self.in_flight.get(model.name, 0):
                continue
            await self._evict(model)
            excess -= 1
        return excess <= 0

    async def _evict(self, model: ModelMetadata) -> None:
        self._evicting.add(model.name)
        try:
            await self.triton.unload(model.name)
            self.metrics.on_demand_evictions.inc()
            self._set(model.model_id, ModelState.UNLOADED, model.name)
            log.info("unloaded %s (%s): least recently used", model.model_id, model.name)
        finally:
            self._evicting.discard(model.name)
            self.last_used.pop(model.name, None)

    async def trim(self) -> None:
        """Unload on-demand models beyond the limit (Triton loads every model of its repository when it starts)."""
        async with self._room:
            if len(self._loaded((await self.triton.models()).served)) > self.limit:
                await self._make_room(keep="", room=0)

    @contextlib.contextmanager
    def using(self, model: ModelMetadata) -> Iterator[None]:
        """Count a request on ``model`` (never unloaded while one is in flight) and record its use."""
        self.in_flight[model.name] = self.in_flight.get(model.name, 0) + 1
        try:
            yield
        finally:
            self.in_flight[model.name] -= 1
            if not self.in_flight[model.name]:
                del self.in_flight[model.name]
            self.last_used[model.name] = time.monotonic()

    def states(self) -> list[OnDemandModel]:
        """On-demand ids this gateway knows that are not loaded now (loading, unloaded, failed)."""
        return [entry for entry in self.models.values() if entry.state != ModelState.LOADED]
