"""The one room of the gateway that talks to Triton: readiness, the served models, and classify.

``Triton`` owns the project's asyncio Triton client (``triton_control.AsyncTritonControl``: concurrent HTTP
requests reach Triton concurrently and its dynamic batcher can group them); nothing else in the gateway talks
to Triton. Triton's errors become the gateway's error kinds (``gateway.errors``); ``create_app`` hands it the client, so
tests run it against a stand-in.

Several Triton replicas: ``GATEWAY_TRITON_URL`` lists them (``a:8001,b:8001``) or names a DNS name that
resolves to each (``dns:///triton-grpc:8001``, the Kubernetes headless Service). gRPC's round_robin policy
keeps one connection per replica, sends each request to the next ready one, takes a replica whose
connection fails out of rotation and reconnects to it with backoff. A classification that fails because its
replica was unreachable or going away (gRPC UNAVAILABLE: refused, reset, closed mid-request; Triton
stopping) is sent again, at most ``REPLICA_RETRIES`` times with a short growing pause and within the request's
deadline: round_robin then picks another replica. More than one try, and the pause, because a replica that has just
died can be picked again until its connection's failure reaches the balancer (seen once in 3,387 requests at
concurrency 8). Repeating it is safe even if the first replica had executed it: a classification changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.errors import BadGateway, BadRequest, GatewayError, NotFound, Timeout, Unavailable
from gateway.schemas import Prediction
from gateway.tracing import outgoing_headers
from stub_health.recovery import StubRecovery
from triton_control import AsyncTritonControl, TritonError
from triton_steps import contract
from triton_steps.metadata import ModelMetadata

# A miss (an unknown model id) re-reads Triton's model list, but at most this often: a flood of made-up ids
# costs Triton one listing per second, not one per request.
MIN_FORCED_REFRESH_S = 1.0
# A classification whose replica went away is tried again this many times, pausing REPLICA_RETRY_PAUSE_S, doubled
# each time (50, 100, 200 ms): enough for the balancer to take a dead replica out of rotation.
REPLICA_RETRIES = 3
REPLICA_RETRY_PAUSE_S = 0.05

log = logging.getLogger("gateway.triton")


def _unreachable(error: TritonError) -> Unavailable:
    return Unavailable(f"Triton is unreachable: {error.message}")


@dataclass(frozen=True)
class ModelList:
    """What Triton serves: the audio-classification ensembles, and the models that failed to load (-> why)."""

    served: dict[str, ModelMetadata] = field(default_factory=dict)  # Triton name -> its metadata
    failed: dict[str, str] = field(default_factory=dict)
    compute_types: dict[str, str] = field(default_factory=dict)  # Triton name -> where its network runs

    def ids(self) -> str:
        """The served model ids, for error messages."""
        return ", ".join(sorted(m.model_id for m in self.served.values())) or "none"

    def named(self, wanted: str) -> ModelMetadata | None:
        """The served model ``wanted`` names (its Triton name or model id); with ``wanted`` empty, the only one."""
        if not wanted:
            return next(iter(self.served.values())) if len(self.served) == 1 else None
        return next((m for m in self.served.values() if wanted in (m.name, m.model_id)), None)


class Triton:
    """Triton, as the gateway sees it. Create it inside the app's lifespan; ``close`` it at the end."""

    def __init__(
        self, client: AsyncTritonControl, refresh_s: float, on_stub_reload: Callable[[str], None] = lambda _: None
    ) -> None:
        self._client = client
        self._recovery = StubRecovery(client, on_stub_reload)
        self._refresh_s = refresh_s
        self._models = ModelList()
        self._loaded_at = -float("inf")
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self._client.close()

    async def models(self, force: bool = False) -> ModelList:
        """The served models, re-read from Triton every ``refresh_s`` (``force``: unless read within a second)."""
        try:
            async with self._lock:
                if time.monotonic() - self._loaded_at >= (MIN_FORCED_REFRESH_S if force else self._refresh_s):
                    self._models = await self._read_models()
                    self._loaded_at = time.monotonic()
                return self._models
        except TritonError as error:
            raise _unreachable(error) from None

    async def _read_models(self) -> ModelList:
        listing = ModelList()
        for entry in await self._client.index():
            if entry.failed:
                listing.failed[entry.name] = entry.reason
            if not entry.ready:
                continue
            config = await self._client.config(entry.name)
            text = config.get("parameters", {}).get(contract.METADATA_PARAMETER, {}).get("string_value")
            if text:  # an export's entry point: its ensemble, or a --single-step export's one model
                listing.served[entry.name] = ModelMetadata.from_json(text)
                listing.compute_types[entry.name] = await self._compute_type(entry.name, config)
        return listing

    async def _compute_type(self, name: str, config: dict) -> str:
        """Where the model's network step runs, as Triton resolved its instance groups (KIND_AUTO: GPU where
        there is one): ``gpu`` or ``cpu`` (a --single-step export runs it in its Python step, on the CPU)."""
        if config.get("platform") != "ensemble":
            return "cpu"
        network = await self._client.config(contract.StepNames(name).network)
        kinds = {group.get("kind", "") for group in network.get("instance_group", [])}
        return "gpu" if "KIND_GPU" in kinds else "cpu"

    def compute_type(self, name: str) -> str:
        """Where ``name``'s network runs, as last read (``cpu`` until read)."""
        return self._models.compute_types.get(name, "cpu")

    async def ready(self) -> ModelList:
        """The model list when Triton and every served model are ready; else ``Unavailable`` saying why."""
        try:
            live = await self._client.server_ready()
        except TritonError as error:
            raise _unreachable(error) from None
        if not live:
            raise Unavailable("Triton is not ready")
        models = await self.models(force=True)
        if not models.served:
            raise Unavailable("Triton serves no audio-classification model")
        if self._recovery.recovering:
            raise Unavailable(f"models restarting after a crash: {', '.join(sorted(self._recovery.recovering))}")
        not_ready = [name for name in models.served if not await self._client.model_ready(name)]
        if not_ready:
            raise Unavailable(f"models not ready: {', '.join(not_ready)}")
        return models

    async def resolve(self, model_id: str | None, default_model: str) -> ModelMetadata:
        """The model a request names (its Triton name or model id), or the default one: ``default_model``, or
        the only served model. Re-reads Triton once on a miss; ``NotFound`` naming the served models."""
        wanted = model_id or default_model
        for force in (False, True):
            models = await self.models(force)
            model = models.named(wanted)
            if model is not None:
                return model
            if not wanted:
                raise NotFound(
                    f"no default model: set GATEWAY_DEFAULT_MODEL, or use /models/<id>; served: {models.ids()}"
                )
        raise NotFound(f"model {wanted!r} is not served; served models: {models.ids()}")

    async def load(self, name: str) -> None:
        """Load the exported model ``name``: its steps, then the ensemble (Triton loads in the order asked)."""
        try:
            await self._client.load_export(name)
        except TritonError as error:
            raise Unavailable(f"Triton could not load {name!r}: {error.message}") from None
        finally:
            self._loaded_at = -float("inf")  # the next look at the model list re-reads it

    async def unload(self, name: str) -> None:
        """Unload the exported model ``name``: the ensemble (Triton lets its requests in flight finish), then its
        steps. It stays in the repository."""
        try:
            await self._client.unload_export(name)
        except TritonError as error:
            raise Unavailable(f"Triton could not unload {name!r}: {error.message}") from None
        finally:
            self._loaded_at = -float("inf")

    async def classify(
        self,
        model: str,
        audio: bytes,
        top_k: int | None,
        function_to_apply: str | None,
        timeout_s: float,
        request_id: str = "",
    ) -> list[Prediction]:
        """One inference through the ensemble ``model``; ``request_id`` becomes Triton's request id."""
        started, retries = time.monotonic(), 0
        while True:
            left_s = timeout_s - (time.monotonic() - started)
            try:
                answer = await self._client.classify(
                    model, audio, top_k, function_to_apply, left_s, request_id, outgoing_headers()
                )
            except TritonError as error:
                pause_s = REPLICA_RETRY_PAUSE_S * 2**retries
                if retries == REPLICA_RETRIES or not error.replica_gone or left_s <= pause_s:
                    raise await self._error(model, error, started, timeout_s) from None
                retries += 1
                log.warning("retrying %s on another replica (try %d): %s", model, retries + 1, error.message)
                await asyncio.sleep(pause_s)
                continue
            return [Prediction(label=label, score=score) for label, score in answer]

    async def _error(self, model: str, error: TritonError, started: float, timeout_s: float) -> GatewayError:
        step = await self._recovery.begin(error, started)
        if step is not None:
            return Unavailable(f"model {model!r} is restarting: the process of its step {step!r} died")
        if error.invalid_input:
            return BadRequest(error.message)
        if error.timed_out:
            return Timeout(f"inference timed out after {timeout_s:g}s")
        if error.not_available:
            return Unavailable(f"model {model!r} is not available: {error.message}")
        return BadGateway(f"Triton failed: {error.message}")
