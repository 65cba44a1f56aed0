"""Stand-ins for the gateway's outside systems, for in-process tests of its own logic (``create_app`` takes
them): ``FakeTriton`` answers as ``triton_control.AsyncTritonControl`` does, ``FakeLoader`` as the loader's
client. They prove what the gateway does with Triton's answers; that serving works is proven against a real
tritonserver (``tests/e2e``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.errors import Refused, Unavailable
from gateway.loader_client import LoaderAnswer
from gateway.settings import Settings
from triton_control import TritonError
from triton_control.client import ModelState
from triton_steps import contract
from triton_steps.contract import ExportState
from triton_steps.metadata import ModelMetadata

LABELS = ["yes", "no", "up", "down"]


def metadata(name: str = "kws", model_id: str | None = None, **fields: object) -> ModelMetadata:
    """A served model's metadata as the exporter writes it (16 kHz, 1 s window, four labels)."""
    base = ModelMetadata(
        name=name,
        model_id=model_id or name,
        source=f"/checkpoints/{name}",
        architecture="Wav2Vec2ForSequenceClassification",
        model_type="wav2vec2",
        feature_extractor="Wav2Vec2FeatureExtractor",
        sampling_rate=16000,
        labels=LABELS,
        function_to_apply="softmax",
        max_batch_size=8,
        min_samples=400,
        max_seconds=None,
        window_seconds=1.0,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def scores_for(labels: list[str], top_k: int | None) -> list[tuple[str, float]]:
    """What ``FakeTriton`` answers: the labels in order, scores 0.4, 0.3, ... (sum 1 for four labels)."""
    answer = [(label, round(0.4 - 0.1 * i, 6)) for i, label in enumerate(labels)]
    return answer[:top_k] if top_k else answer


@dataclass
class Call:
    model: str
    audio: bytes
    top_k: int | None
    function: str | None
    timeout_s: float | None
    request_id: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeTriton:
    """Triton serving ``loaded`` ensembles (their steps too), with ``exported`` ones in its repository.

    ``errors`` are raised by the next classifications, in order; ``gate`` (when set) holds every
    classification until it is set, ``delay_s`` slows each; ``unreachable`` makes every call fail as a refused
    connection does."""

    loaded: dict[str, ModelMetadata] = field(default_factory=dict)
    exported: dict[str, ModelMetadata] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    not_ready: set[str] = field(default_factory=set)
    on_gpu: set[str] = field(default_factory=set)  # models whose network step Triton placed on a GPU
    errors: list[TritonError] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    reloads: list[str] = field(default_factory=list)
    unloads: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None
    delay_s: float = 0.0  # each classification takes this long
    unreachable: bool = False
    closed: bool = False

    @classmethod
    def serving(cls, *models: ModelMetadata) -> FakeTriton:
        return cls(loaded={m.name: m for m in models})

    def _reach(self) -> None:
        if self.unreachable:
            raise TritonError("UNAVAILABLE", "failed to connect to all addresses")

    async def server_ready(self) -> bool:
        self._reach()
        return True

    async def model_ready(self, name: str) -> bool:
        return not self.unreachable and name in self.loaded and name not in self.not_ready

    async def index(self) -> list[ModelState]:
        self._reach()
        states = [ModelState(name, "UNAVAILABLE", reason) for name, reason in self.failed.items()]
        for name in self.loaded:
            states += [ModelState(step, "READY") for step in contract.StepNames(name).all()]
        for name in self.exported:
            states += [ModelState(step, "UNAVAILABLE", "unloaded") for step in contract.StepNames(name).all()]
        return states

    async def config(self, name: str) -> dict:
        self._reach()
        if name in self.loaded:
            text = self.loaded[name].to_json()
            return {"platform": "ensemble", "parameters": {contract.METADATA_PARAMETER: {"string_value": text}}}
        kind = "KIND_GPU" if any(contract.StepNames(model).network == name for model in self.on_gpu) else "KIND_CPU"
        return {"backend": "python", "instance_group": [{"count": 1, "kind": kind}]}

    async def load_export(self, name: str) -> None:
        self._reach()
        self.loaded[name] = self.exported.pop(name)

    async def unload_export(self, name: str) -> None:
        self._reach()
        self.unloads.append(name)
        self.exported[name] = self.loaded.pop(name)

    async def reload(self, name: str) -> None:
        self.reloads.append(name)

    async def classify(  # the gateway passes every argument, in AsyncTritonControl.classify's order
        self,
        model: str,
        audio: bytes,
        top_k: int | None,
        function: str | None,
        timeout_s: float | None,
        request_id: str,
        headers: dict[str, str] | None = None,
    ) -> list[tuple[str, float]]:
        self._reach()
        self.calls.append(Call(model, audio, top_k, function, timeout_s, request_id))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay_s)
        if self.errors:
            raise self.errors.pop(0)
        if model not in self.loaded:
            raise TritonError("NOT_FOUND", f"Request for unknown model: '{model}' is not found")
        return scores_for(self.loaded[model].labels, top_k)

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeLoader:
    """The loader: ``exports`` ids take ``rounds`` requests before they are exported into ``triton``'s
    repository; ``refusals`` are answered with their status; ``away`` answers as an unreachable loader."""

    triton: FakeTriton
    exports: dict[str, ModelMetadata] = field(default_factory=dict)  # model id -> what its export serves
    refusals: dict[str, tuple[int, str]] = field(default_factory=dict)
    rounds: int = 1
    away: bool = False
    asked: list[str] = field(default_factory=list)

    async def request(self, model_id: str) -> LoaderAnswer:
        self.asked.append(model_id)
        if self.away:
            raise Unavailable("the model loader is unreachable: connection refused")
        if model_id in self.refusals:
            raise Refused(*self.refusals[model_id])
        model = self.exports[model_id]
        if self.asked.count(model_id) < self.rounds:
            return LoaderAnswer(ExportState.EXPORTING, model.name, 12.0)
        if model.name not in self.triton.loaded:
            self.triton.exported[model.name] = model
        return LoaderAnswer(ExportState.EXPORTED, model.name)


def settings(**values: object) -> Settings:
    """Gateway settings: the defaults and ``values``, none read from the environment."""
    return Settings.model_construct(**{**Settings().model_dump(), **values})


@contextmanager
def gateway_app(triton: FakeTriton, loader: FakeLoader | None = None, **values: object) -> Iterator[TestClient]:
    """The whole gateway app in process (lifespan run) in front of ``triton``."""
    app = create_app(settings(**values), lambda _settings: triton, loader or FakeLoader(triton))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
