"""Talking to Triton: the served models (read from each ensemble's metadata) and one classify call.

Uses tritonclient's asyncio gRPC client, so that concurrent HTTP requests reach Triton concurrently and its
dynamic batcher can group them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from gateway.errors import GatewayError
from gateway.schemas import Prediction
from triton_steps.metadata import METADATA_PARAMETER, ModelMetadata
from triton_steps.stub_health import dead_instance, model_of, with_reload_marker


def connect(url: str, lb_policy: str) -> grpcclient.InferenceServerClient:
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
        ("grpc.lb_policy_name", lb_policy),
    ]
    return grpcclient.InferenceServerClient(url, channel_args=channel_args)


def _status(error: InferenceServerException) -> str:
    return str(error.status() or "")


_ENSEMBLE_PREFIX = re.compile(r"^in ensemble '[^']*', ")


def _clean(message: str) -> str:
    """Triton prefixes a step's error with "in ensemble 'NAME', ": the client gets what the step said."""
    return _ENSEMBLE_PREFIX.sub("", message)


class StubRecovery:
    """Reloads a model whose Python stub died (an OOM kill, a crash).

    tritonserver 2.51 (the pip wheel, and the NGC 24.10 image) never restarts a dead stub: the model stays
    "ready" and fails every request. The first request that meets the dead stub starts a reload of that model
    (its config passed back with a marker, which makes Triton load fresh instances and swap them in) and is answered
    503 with Retry-After, as is every request until the reload is done; ``/ready`` says which models recover.
    """

    def __init__(self, client: grpcclient.InferenceServerClient) -> None:
        self.client = client
        self.recovering: dict[str, asyncio.Task[None]] = {}
        self.reloaded_at: dict[str, float] = {}  # model -> time.monotonic() its last reload finished
        self.log: list[str] = []  # what was recovered, and how long it took (for the logs and the tests)

    async def _reload(self, model: str) -> None:
        started = time.monotonic()
        try:
            config = with_reload_marker((await self.client.get_model_config(model, as_json=True))["config"])
            await self.client.load_model(model, config=json.dumps(config))
            self.reloaded_at[model] = time.monotonic()
            self.log.append(f"reloaded {model} after its stub died, in {time.monotonic() - started:.2f}s")
        except InferenceServerException as error:
            self.log.append(f"could not reload {model}: {error.message()}")
        finally:
            self.recovering.pop(model, None)
        print(self.log[-1], flush=True)

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


@dataclass(frozen=True)
class ServedModel:
    metadata: ModelMetadata
    ready: bool


# A miss (an unknown model id) re-reads Triton's model list, but at most this often: a flood of made-up ids
# costs Triton one listing per second, not one per request.
MIN_FORCED_REFRESH_S = 1.0


class TritonModels:
    """The audio-classification ensembles Triton serves, refreshed at most every ``refresh_s`` seconds."""

    def __init__(self, client: grpcclient.InferenceServerClient, refresh_s: float) -> None:
        self.client = client
        self.refresh_s = refresh_s
        self._models: dict[str, ServedModel] = {}
        self.failed: dict[str, str] = {}  # models Triton could not load -> why (the others are served)
        self._loaded_at = -float("inf")
        self._lock = asyncio.Lock()

    async def refresh(self, force: bool = False) -> dict[str, ServedModel]:
        async with self._lock:
            age = time.monotonic() - self._loaded_at
            if age < (MIN_FORCED_REFRESH_S if force else self.refresh_s):
                return self._models
            index = await self.client.get_model_repository_index(as_json=True)
            models, failed = {}, {}
            for entry in index.get("models", []):
                ready = entry.get("state") == "READY"
                if entry.get("state") == "UNAVAILABLE" and entry.get("reason"):
                    failed[entry["name"]] = entry["reason"]
                if not ready:
                    continue
                config = (await self.client.get_model_config(entry["name"], as_json=True))["config"]
                text = config.get("parameters", {}).get(METADATA_PARAMETER, {}).get("string_value")
                if config.get("platform") == "ensemble" and text:
                    models[entry["name"]] = ServedModel(ModelMetadata.from_json(text), ready)
            self._models, self.failed = models, failed
            self._loaded_at = time.monotonic()
            return models

    async def all(self, force: bool = False) -> dict[str, ServedModel]:
        try:
            return await self.refresh(force)
        except InferenceServerException as error:
            raise GatewayError(503, f"Triton is unreachable: {error.message()}") from None

    async def find(self, model_id: str) -> ModelMetadata:
        """The model whose Triton name or model id is ``model_id``, re-reading Triton once on a miss."""
        for force in (False, True):
            models = await self.all(force)
            for model in models.values():
                if model_id in (model.metadata.name, model.metadata.model_id):
                    return model.metadata
        served = ", ".join(sorted(m.metadata.model_id for m in models.values())) or "none"
        raise GatewayError(404, f"model {model_id!r} is not served; served models: {served}")


def _bytes_input(name: str, value: bytes) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[value]], dtype=np.object_))
    return tensor


async def classify(
    client: grpcclient.InferenceServerClient,
    recovery: StubRecovery,
    model: str,
    audio: bytes,
    top_k: int | None,
    function_to_apply: str | None,
    timeout_s: float,
) -> list[Prediction]:
    """One inference through the ensemble; Triton's errors become ``GatewayError`` with an HTTP status."""
    started = time.monotonic()
    inputs = [_bytes_input("AUDIO", audio)]
    if top_k is not None:
        top = grpcclient.InferInput("TOP_K", [1, 1], "INT32")
        top.set_data_from_numpy(np.array([[top_k]], dtype=np.int32))
        inputs.append(top)
    if function_to_apply is not None:
        inputs.append(_bytes_input("FUNCTION_TO_APPLY", function_to_apply.encode()))
    try:
        result = await client.infer(model, inputs, client_timeout=timeout_s)
    except InferenceServerException as error:
        status = _status(error)
        message = _clean(error.message() or str(error))
        instance = dead_instance(message)
        if instance:
            step = await recovery.begin(instance, started)
            raise GatewayError(503, f"model {model!r} is restarting: the process of its step {step!r} died") from None
        if "INVALID_ARGUMENT" in status:
            raise GatewayError(400, message) from None
        if "DEADLINE_EXCEEDED" in status or "Deadline Exceeded" in message:
            raise GatewayError(504, f"inference timed out after {timeout_s:g}s") from None
        if "UNAVAILABLE" in status or "NOT_FOUND" in status or "not ready" in message or "unknown model" in message:
            raise GatewayError(503, f"model {model!r} is not available: {message}") from None
        raise GatewayError(502, f"Triton failed: {message}") from None
    labels = result.as_numpy("LABELS")[0]
    scores = result.as_numpy("SCORES")[0]
    return [Prediction(label=label.decode(), score=float(score)) for label, score in zip(labels, scores, strict=True)]
