"""``TritonControl`` (blocking) and ``AsyncTritonControl`` (asyncio): one API over tritonclient's two gRPC clients.

The two differ only in ``await``; what they share (the index's reading, the reload marker, the order a
model's steps load in, the tensors of one classification, the error convention) is written once, below or
in ``triton_control.errors``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import triton_to_np_dtype

from triton_control.channel import channel_args, grpc_target
from triton_control.errors import TritonError, translated
from triton_steps import contract

LOAD_TIMEOUT_S = 600.0  # a load or unload: a real-size model takes tens of seconds on a busy CPU
QUERY_TIMEOUT_S = 30.0  # readiness, the index, a config, statistics
Answer = list[tuple[str, float]]  # (label, score), best first


@dataclass(frozen=True)
class ModelState:
    """One model of Triton's repository index."""

    name: str
    state: str  # READY, LOADING, UNLOADING, UNAVAILABLE, or "" (in the repository, never loaded)
    reason: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "READY"

    @property
    def failed(self) -> bool:
        """It failed to load (Triton lists a model unloaded on purpose as UNAVAILABLE "unloaded")."""
        return self.state == "UNAVAILABLE" and self.reason not in ("", "unloaded")


def _states(index: dict) -> list[ModelState]:
    return [ModelState(m["name"], m.get("state", ""), m.get("reason", "")) for m in index.get("models", [])]


@dataclass(frozen=True)
class ModelStatistics:
    """What Triton counted for one model since it was loaded, over its versions."""

    inferences: int  # successful inferences (requests; a batch of n counts n)
    executions: int  # model executions (a batch counts once)


def _statistics(answer: dict) -> dict[str, ModelStatistics]:
    counts: dict[str, ModelStatistics] = {}
    for entry in answer.get("model_stats", []):
        seen = counts.get(entry["name"], ModelStatistics(0, 0))
        done = int(entry.get("inference_stats", {}).get("success", {}).get("count", 0))  # int64: a JSON string
        counts[entry["name"]] = ModelStatistics(
            seen.inferences + done, seen.executions + int(entry.get("execution_count", 0))
        )
    return counts


def _tensor(spec: contract.TensorSpec, value: object) -> grpcclient.InferInput:
    """One element of ``spec``'s type, shaped [1, 1] (the batch of one)."""
    datatype = "BYTES" if spec.data_type == "TYPE_STRING" else spec.data_type.removeprefix("TYPE_")
    tensor = grpcclient.InferInput(spec.name, [1, 1], datatype)
    tensor.set_data_from_numpy(np.array([[value]], dtype=triton_to_np_dtype(datatype)))
    return tensor


def _ensemble_inputs(audio: bytes, top_k: int | None, function: str | None) -> list[grpcclient.InferInput]:
    """The ensemble's inputs for one clip (the optional ones only when given)."""
    inputs = [_tensor(contract.AUDIO, audio)]
    if top_k is not None:
        inputs.append(_tensor(contract.TOP_K, top_k))
    if function is not None:
        inputs.append(_tensor(contract.FUNCTION_TO_APPLY, function.encode()))
    return inputs


def _exported_models(name: str, held: set[str]) -> list[str]:
    """The models of the export ``name`` that the repository ``held``, in load order: its three steps and the
    ensemble, or a --single-step export's one model."""
    return [model for model in contract.StepNames(name).all() if model in held] or [name]


def with_reload_marker(config: dict) -> dict:
    """A model's config (Triton's JSON form) that Triton will really reload: loading a model with its
    unchanged config is a no-op in 2.51, which would keep a dead stub (``stub_health``). The marker parameter
    is ignored."""
    marked = dict(config)
    marked["parameters"] = {**config.get("parameters", {}), "reloaded_at": {"string_value": f"{time.time():.3f}"}}
    return marked


def _config_text(config: dict | None) -> str | None:
    """A config to load in place of the repository's file, as Triton's load API takes it (JSON)."""
    return None if config is None else json.dumps(config)


def _answer(result: grpcclient.InferResult) -> Answer:
    labels = result.as_numpy(contract.LABELS.name)[0]
    scores = result.as_numpy(contract.SCORES.name)[0]
    return [(label.decode(), float(score)) for label, score in zip(labels, scores, strict=True)]


class TritonControl:
    """One Triton (or several replicas behind ``url``), blocking. A context manager; ``close`` it otherwise."""

    def __init__(self, url: str, lb_policy: str = "pick_first") -> None:
        self.url = url
        self._client = grpcclient.InferenceServerClient(grpc_target(url), channel_args=channel_args(url, lb_policy))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TritonControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_ready(self) -> bool:
        """Whether Triton answers and is ready (False when it cannot be reached)."""
        try:
            with translated():
                return self._client.is_server_ready(client_timeout=QUERY_TIMEOUT_S)
        except TritonError:
            return False

    def model_ready(self, name: str) -> bool:
        try:
            with translated():
                return self._client.is_model_ready(name, client_timeout=QUERY_TIMEOUT_S)
        except TritonError:
            return False

    def index(self) -> list[ModelState]:
        """Every model of the repository, with its state."""
        with translated():
            return _states(self._client.get_model_repository_index(as_json=True, client_timeout=QUERY_TIMEOUT_S))

    def config(self, name: str) -> dict:
        """The config a model is loaded with, as JSON (protobuf's field names)."""
        with translated():
            return self._client.get_model_config(name, as_json=True, client_timeout=QUERY_TIMEOUT_S)["config"]

    def load(self, name: str, config: dict | None = None) -> None:
        """Load (or load again) ``name``, from the repository or with ``config`` in place of its file."""
        with translated():
            self._client.load_model(name, config=_config_text(config), client_timeout=LOAD_TIMEOUT_S)

    def reload(self, name: str) -> None:
        """Fresh instances of a loaded model, swapped in when ready: its config passed back with a marker
        (Triton treats loading an unchanged model as a no-op, which would keep a dead stub)."""
        self.load(name, with_reload_marker(self.config(name)))

    def unload(self, name: str) -> None:
        """Unload ``name``; its requests in flight finish."""
        with translated():
            self._client.unload_model(name, client_timeout=LOAD_TIMEOUT_S)

    def unload_export(self, name: str) -> None:
        """Unload the exported model ``name``: the ensemble, then its steps (Triton answers an unload of a model
        it does not know, as a --single-step export's steps, with success). (Triton's ``unload_dependents``
        leaves steps that were loaded by name, as ``--load-model=*`` and the sync load them.)"""
        for model in reversed(contract.StepNames(name).all()):
            self.unload(model)

    def statistics(self, name: str = "") -> dict[str, ModelStatistics]:
        """Triton's counts per model: of ``name``, or of every loaded model."""
        with translated():
            answer = self._client.get_inference_statistics(name, as_json=True, client_timeout=QUERY_TIMEOUT_S)
        return _statistics(answer)

    def classify(self, model: str, audio: bytes, top_k: int | None = None, function: str | None = None) -> Answer:
        """One clip through the ensemble ``model``."""
        with translated():
            return _answer(self._client.infer(model, _ensemble_inputs(audio, top_k, function)))


class AsyncTritonControl:
    """``TritonControl`` for asyncio: concurrent calls reach Triton concurrently (its dynamic batcher can group
    them). Create it inside a running event loop; ``await close()`` it."""

    def __init__(self, url: str, lb_policy: str = "pick_first") -> None:
        self._client = grpcaio.InferenceServerClient(grpc_target(url), channel_args=channel_args(url, lb_policy))

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> AsyncTritonControl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def server_ready(self) -> bool:
        """Whether Triton is ready; raises ``TritonError`` when it cannot be reached (the gateway says why)."""
        with translated():
            return await self._client.is_server_ready(client_timeout=QUERY_TIMEOUT_S)

    async def model_ready(self, name: str) -> bool:
        try:
            with translated():
                return await self._client.is_model_ready(name, client_timeout=QUERY_TIMEOUT_S)
        except TritonError:
            return False

    async def index(self) -> list[ModelState]:
        with translated():
            return _states(await self._client.get_model_repository_index(as_json=True, client_timeout=QUERY_TIMEOUT_S))

    async def config(self, name: str) -> dict:
        with translated():
            return (await self._client.get_model_config(name, as_json=True, client_timeout=QUERY_TIMEOUT_S))["config"]

    async def load(self, name: str, config: dict | None = None) -> None:
        with translated():
            await self._client.load_model(name, config=_config_text(config), client_timeout=LOAD_TIMEOUT_S)

    async def reload(self, name: str) -> None:
        await self.load(name, with_reload_marker(await self.config(name)))

    async def unload(self, name: str) -> None:
        with translated():
            await self._client.unload_model(name, client_timeout=LOAD_TIMEOUT_S)

    async def load_export(self, name: str) -> None:
        """Load the exported model ``name``: its steps, then the ensemble (Triton loads in the order asked)."""
        for model in _exported_models(name, {state.name for state in await self.index()}):
            await self.load(model)

    async def unload_export(self, name: str) -> None:
        """Unload the exported model ``name``: the ensemble (its requests in flight finish), then its steps."""
        for model in reversed(contract.StepNames(name).all()):
            await self.unload(model)

    async def classify(
        self,
        model: str,
        audio: bytes,
        top_k: int | None = None,
        function: str | None = None,
        timeout_s: float | None = None,
        request_id: str = "",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One clip through the ensemble ``model``; ``request_id`` becomes Triton's request id, ``headers`` go
        with the call (trace context)."""
        with translated():
            result = await self._client.infer(
                model,
                _ensemble_inputs(audio, top_k, function),
                client_timeout=timeout_s,
                request_id=request_id,
                headers=headers,
            )
        return _answer(result)
