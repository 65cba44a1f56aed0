"""The one room of the gateway that talks to Triton: readiness, the served models, and classify.

``Triton`` owns tritonclient's asyncio gRPC client (so concurrent HTTP requests reach Triton concurrently
and its dynamic batcher can group them); nothing else in the gateway imports tritonclient. Triton's errors
become ``GatewayError`` with the HTTP status the client gets.

Several Triton replicas: ``GATEWAY_TRITON_URL`` lists them (``a:8001,b:8001``) or names a DNS name that
resolves to each (``dns:///triton-grpc:8001``, the Kubernetes headless Service). gRPC's round_robin policy
keeps one connection per replica, sends each request to the next ready one, takes a replica whose
connection fails out of rotation and reconnects to it with backoff. A classification that fails because its
replica was unreachable or going away (gRPC UNAVAILABLE: refused, reset, closed mid-request; Triton
stopping) is sent once more, within the request's deadline: round_robin then picks another replica.
Repeating it is safe even if the first replica had executed it: a classification changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from gateway.errors import GatewayError
from gateway.schemas import Prediction
from gateway.tracing import outgoing_headers
from triton_steps import contract
from triton_steps.metadata import ModelMetadata
from triton_steps.stub_health import dead_instance, model_of, with_reload_marker

# A miss (an unknown model id) re-reads Triton's model list, but at most this often: a flood of made-up ids
# costs Triton one listing per second, not one per request.
MIN_FORCED_REFRESH_S = 1.0
MAX_RECONNECT_BACKOFF_MS = 5000

log = logging.getLogger("gateway.triton")
_ENSEMBLE_PREFIX = re.compile(r"^in ensemble '[^']*', ")


def _tensor(spec: contract.TensorSpec, value: object) -> grpcclient.InferInput:
    """One element of ``spec``'s type, shaped [1, 1] (the batch of one)."""
    datatype = "BYTES" if spec.data_type == "TYPE_STRING" else spec.data_type.removeprefix("TYPE_")
    tensor = grpcclient.InferInput(spec.name, [1, 1], datatype)
    tensor.set_data_from_numpy(np.array([[value]], dtype=triton_to_np_dtype(datatype)))
    return tensor


def ensemble_inputs(audio: bytes, top_k: int | None = None, function: str | None = None) -> list[grpcclient.InferInput]:
    """The ensemble's inputs for one clip (the optional ones only when given)."""
    inputs = [_tensor(contract.AUDIO, audio)]
    if top_k is not None:
        inputs.append(_tensor(contract.TOP_K, top_k))
    if function is not None:
        inputs.append(_tensor(contract.FUNCTION_TO_APPLY, function.encode()))
    return inputs


def grpc_target(url: str) -> str:
    """gRPC's target for ``url``: ``host:port``, a gRPC URI (``dns:///name:port``), or a comma-separated list of
    ``host:port``, resolved here into gRPC's address-list form (``ipv4:a:p,b:p``), which takes addresses only."""
    endpoints = [endpoint.strip() for endpoint in url.split(",") if endpoint.strip()]
    if len(endpoints) == 1:
        return endpoints[0]
    addresses = {"ipv4": [], "ipv6": []}
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        if not host or not port.isdigit() or "/" in host:
            raise ValueError(f"GATEWAY_TRITON_URL: {endpoint!r} is not host:port (a list takes host:port only)")
        for family, _, _, _, address in socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM):
            if family == socket.AF_INET:
                addresses["ipv4"].append(f"{address[0]}:{port}")
            elif family == socket.AF_INET6:
                addresses["ipv6"].append(f"[{address[0]}]:{port}")
    scheme = "ipv4" if addresses["ipv4"] else "ipv6"  # gRPC's list holds one family
    return f"{scheme}:{','.join(dict.fromkeys(addresses[scheme]))}"


def lb_policy_for(url: str, lb_policy: str) -> str:
    """``auto``: round_robin over several replicas (a list, or a DNS name), else pick_first."""
    if lb_policy != "auto":
        return lb_policy
    return "round_robin" if "," in url or url.startswith("dns:") else "pick_first"


def _connect(url: str, lb_policy: str) -> grpcclient.InferenceServerClient:
    """The asyncio gRPC client; ``lb_policy`` round_robin spreads requests over every address ``url`` resolves to
    (gRPC keeps connections open, so a plain Service would pin each gateway to one Triton replica)."""
    keepalive = grpcclient.KeepAliveOptions()
    channel_args = [  # tritonclient's defaults, which passing channel_args replaces
        ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.lb_policy_name", lb_policy_for(url, lb_policy)),
        # A replica that went away is tried again within 5 s (gRPC's default backoff grows to 120 s): a
        # restarted Triton takes traffic again soon after it is back.
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
    ]
    return grpcclient.InferenceServerClient(grpc_target(url), channel_args=channel_args)


# Triton's answer to a request that arrives while it shuts down (gRPC UNAVAILABLE too, in 2.51)
_SHUTTING_DOWN = re.compile(r"server is (shutting down|stopping|not ready)", re.I)


def _replica_gone(error: InferenceServerException) -> bool:
    """Whether ``error`` says the replica went away or could not be reached (worth one try elsewhere)."""
    return "UNAVAILABLE" in str(error.status() or "") or bool(_SHUTTING_DOWN.search(error.message() or ""))


def _unreachable(error: InferenceServerException) -> GatewayError:
    return GatewayError(503, f"Triton is unreachable: {error.message()}")


@dataclass(frozen=True)
class ModelList:
    """What Triton serves: the audio-classification ensembles, and the models that failed to load (-> why)."""

    served: dict[str, ModelMetadata] = field(default_factory=dict)  # Triton name -> its metadata
    failed: dict[str, str] = field(default_factory=dict)

    def ids(self) -> str:
        """The served model ids, for error messages."""
        return ", ".join(sorted(m.model_id for m in self.served.values())) or "none"


class _StubRecovery:
    """Reloads a model whose Python stub died (an OOM kill, a crash).

    tritonserver 2.51 (the pip wheel, and the NGC 24.10 image) never restarts a dead stub: the model stays
    "ready" and fails every request. The first request that meets the dead stub starts a reload of that model
    (its config passed back with a marker, which makes Triton load fresh instances and swap them in) and is answered
    503 with Retry-After, as is every request until the reload is done; ``/ready`` says which models recover.
    """

    def __init__(self, client: grpcclient.InferenceServerClient, on_reload: Callable[[str], None]) -> None:
        self.client = client
        self.on_reload = on_reload  # told each model it reloaded (the gateway's metrics)
        self.recovering: dict[str, asyncio.Task[None]] = {}
        self.reloaded_at: dict[str, float] = {}  # model -> time.monotonic() its last reload finished

    async def _reload(self, model: str) -> None:
        started = time.monotonic()
        try:
            config = with_reload_marker((await self.client.get_model_config(model, as_json=True))["config"])
            await self.client.load_model(model, config=json.dumps(config))
            self.reloaded_at[model] = time.monotonic()
            self.on_reload(model)
            log.info("reloaded %s after its stub died, in %.2fs", model, time.monotonic() - started)
        except InferenceServerException as error:
            log.warning("could not reload %s: %s", model, error.message())
        finally:
            self.recovering.pop(model, None)

    async def begin(self, instance: str, request_started: float) -> str:
        """Start reloading the model of a dead stub's ``instance`` (e.g. ``m_onnx_0_0``), once; its name.

        A request sent before the last reload finished met the old, dead stub: it starts no new reload."""
        index = await self.client.get_model_repository_index(as_json=True)
        model = model_of(instance, {entry["name"] for entry in index.get("models", [])})
        if model is None:
            return instance
        stale = self.reloaded_at.get(model, -float("inf")) > request_started
        if model not in self.recovering and not stale:
            self.recovering[model] = asyncio.create_task(self._reload(model))
        return model


class Triton:
    """Triton, as the gateway sees it. Create it inside the app's lifespan; ``close`` it at the end."""

    def __init__(
        self, url: str, lb_policy: str, refresh_s: float, on_stub_reload: Callable[[str], None] = lambda _: None
    ) -> None:
        self._client = _connect(url, lb_policy)
        self._recovery = _StubRecovery(self._client, on_stub_reload)
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
        except InferenceServerException as error:
            raise _unreachable(error) from None

    async def _read_models(self) -> ModelList:
        index = await self._client.get_model_repository_index(as_json=True)
        served, failed = {}, {}
        for entry in index.get("models", []):
            # Triton lists a model unloaded on purpose (by the sync, or an operator) as UNAVAILABLE "unloaded"
            if entry.get("state") == "UNAVAILABLE" and entry.get("reason") not in (None, "", "unloaded"):
                failed[entry["name"]] = entry["reason"]
            if entry.get("state") != "READY":
                continue
            config = (await self._client.get_model_config(entry["name"], as_json=True))["config"]
            text = config.get("parameters", {}).get(contract.METADATA_PARAMETER, {}).get("string_value")
            if config.get("platform") == "ensemble" and text:
                served[entry["name"]] = ModelMetadata.from_json(text)
        return ModelList(served, failed)

    async def ready(self) -> ModelList:
        """The model list when Triton and every served model are ready; else ``GatewayError`` 503 saying why."""
        try:
            live = await self._client.is_server_ready()
        except InferenceServerException as error:
            raise _unreachable(error) from None
        if not live:
            raise GatewayError(503, "Triton is not ready")
        models = await self.models(force=True)
        if not models.served:
            raise GatewayError(503, "Triton serves no audio-classification model")
        if self._recovery.recovering:
            raise GatewayError(503, f"models restarting after a crash: {', '.join(sorted(self._recovery.recovering))}")
        not_ready = [name for name in models.served if not await self._client.is_model_ready(name)]
        if not_ready:
            raise GatewayError(503, f"models not ready: {', '.join(not_ready)}")
        return models

    async def resolve(self, model_id: str | None, default_model: str) -> ModelMetadata:
        """The model a request names (its Triton name or model id), or the default one: ``default_model``, or
        the only served model. Re-reads Triton once on a miss; 404 naming the served models."""
        wanted = model_id or default_model
        for force in (False, True):
            models = await self.models(force)
            if not wanted:
                if len(models.served) == 1:
                    return next(iter(models.served.values()))
                raise GatewayError(
                    404, f"no default model: set GATEWAY_DEFAULT_MODEL, or use /models/<id>; served: {models.ids()}"
                )
            for model in models.served.values():
                if wanted in (model.name, model.model_id):
                    return model
        raise GatewayError(404, f"model {wanted!r} is not served; served models: {models.ids()}")

    async def load(self, name: str) -> None:
        """Load the exported model ``name``: its steps, then the ensemble (Triton loads in the order asked)."""
        try:
            for model in contract.StepNames(name).all():
                await self._client.load_model(model)
        except InferenceServerException as error:
            raise GatewayError(503, f"Triton could not load {name!r}: {error.message()}") from None
        finally:
            self._loaded_at = -float("inf")  # the next look at the model list re-reads it

    async def unload(self, name: str) -> None:
        """Unload the exported model ``name``: the ensemble (Triton lets its requests in flight finish), then its
        steps. It stays in the repository."""
        try:
            for model in reversed(contract.StepNames(name).all()):
                await self._client.unload_model(model)
        except InferenceServerException as error:
            raise GatewayError(503, f"Triton could not unload {name!r}: {error.message()}") from None
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
        started = time.monotonic()
        inputs = ensemble_inputs(audio, top_k, function_to_apply)
        for attempt in (1, 2):
            left_s = timeout_s - (time.monotonic() - started)
            try:
                result = await self._client.infer(
                    model, inputs, client_timeout=left_s, request_id=request_id, headers=outgoing_headers()
                )
                break
            except InferenceServerException as error:
                if attempt == 1 and _replica_gone(error) and left_s > 0:
                    log.warning("retrying %s on another replica: %s", model, error.message())
                    continue
                raise await self._error(model, error, started, timeout_s) from None
        labels = result.as_numpy(contract.LABELS.name)[0]
        scores = result.as_numpy(contract.SCORES.name)[0]
        return [Prediction(label=lab.decode(), score=float(score)) for lab, score in zip(labels, scores, strict=True)]

    async def _error(
        self, model: str, error: InferenceServerException, started: float, timeout_s: float
    ) -> GatewayError:
        status = str(error.status() or "")
        # Triton prefixes a step's error with "in ensemble 'NAME', ": the client gets what the step said.
        message = _ENSEMBLE_PREFIX.sub("", error.message() or str(error))
        instance = dead_instance(message)
        if instance:
            step = await self._recovery.begin(instance, started)
            return GatewayError(503, f"model {model!r} is restarting: the process of its step {step!r} died")
        if "INVALID_ARGUMENT" in status:
            return GatewayError(400, message)
        if "DEADLINE_EXCEEDED" in status or "Deadline Exceeded" in message:
            return GatewayError(504, f"inference timed out after {timeout_s:g}s")
        if "UNAVAILABLE" in status or "NOT_FOUND" in status or "not ready" in message or "unknown model" in message:
            return GatewayError(503, f"model {model!r} is not available: {message}")
        return GatewayError(502, f"Triton failed: {message}")
