"""The one inference path: what every classification goes through, a POST's or a stream window's alike.

``Inference.resolve`` finds the model (loading an on-demand id: ``Loading``); ``Inference.run`` holds the
model's on-demand use (it is never unloaded under a request), the classification's admission permit and,
for audio heavy to decode, its lane, then calls Triton within the request's deadline and times it.
``classify`` is the two together; ``classify_waiting`` is the HF API's wait-for-model around it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from opentelemetry.trace import Tracer

from gateway import decode_cost
from gateway.admission import Admission
from gateway.errors import Overloaded, Unavailable
from gateway.metrics import Metrics, Outcome
from gateway.on_demand import OnDemand
from gateway.schemas import Parameters, Prediction
from gateway.settings import Settings
from gateway.triton import Triton
from triton_steps.metadata import ModelMetadata

WAIT_FOR_MODEL_POLL_S = 1.0


def _left_s(deadline: float) -> float:
    """Seconds left until ``deadline`` (``time.perf_counter``), never quite zero."""
    return max(0.001, deadline - time.perf_counter())


@dataclass
class Inference:
    settings: Settings
    triton: Triton
    on_demand: OnDemand
    admission: Admission
    metrics: Metrics
    tracer: Tracer

    async def resolve(self, model_id: str | None) -> ModelMetadata:
        """The served model ``model_id`` names (None: the default one)."""
        return await self.on_demand.resolve(model_id, self.settings.default_model)

    async def run(
        self,
        model: ModelMetadata,
        audio: bytes,
        parameters: Parameters,
        request_id: str,
        outcome: Outcome,
        heavy: bool | None = None,
        wait_s: float = 0.0,
    ) -> list[Prediction]:
        """Classify ``audio`` with ``model``, within the gateway's inference timeout; Triton's time and the
        network's device go into ``outcome``. ``heavy``: whether the audio is heavy to decode, where the caller
        made it and knows (None: from the audio's length, ``decode_cost.is_heavy``, which refuses what is not
        audio). ``wait_s``: how long it may wait for a classification slot when the gateway is at its cap (0:
        refused at once)."""
        deadline = time.perf_counter() + self.settings.timeout_s
        heavy = decode_cost.is_heavy(audio) if heavy is None else heavy
        with self.on_demand.using(model):
            async with (
                self.admission.request(min(wait_s, _left_s(deadline))),
                self.admission.lane(heavy, _left_s(deadline)),
            ):
                with self.tracer.start_as_current_span("triton infer") as span:
                    span.set_attributes({"model": model.name, "heavy": heavy})
                    started = time.perf_counter()
                    answer = await self.triton.classify(
                        model.name,
                        audio,
                        parameters.top_k,
                        parameters.function_to_apply,
                        _left_s(deadline),
                        request_id,
                    )
                    outcome.compute_s = time.perf_counter() - started
                    outcome.compute_type = self.triton.compute_type(model.name)
                    self.metrics.triton_latency.labels(model.model_id).observe(outcome.compute_s)
                    return answer

    async def classify(
        self, model_id: str | None, audio: bytes, parameters: Parameters, request_id: str, outcome: Outcome
    ) -> list[Prediction]:
        model = await self.resolve(model_id)
        outcome.model = model.model_id
        return await self.run(model, audio, parameters, request_id, outcome)

    async def classify_waiting(
        self,
        model_id: str | None,
        audio: bytes,
        parameters: Parameters,
        request_id: str,
        outcome: Outcome,
        wait: bool,
    ) -> list[Prediction]:
        """``classify``; with ``wait`` (X-Wait-For-Model, options.wait_for_model), a model that is loading or
        briefly unavailable is tried again every second, up to ``GATEWAY_WAIT_FOR_MODEL_S``. A gateway at one of
        its limits is not waited out: that request is refused at once, its body's bytes given back."""
        give_up = time.perf_counter() + self.settings.wait_for_model_s
        while True:
            try:
                return await self.classify(model_id, audio, parameters, request_id, outcome)
            except Overloaded:
                raise
            except Unavailable:
                if not wait or time.perf_counter() + WAIT_FOR_MODEL_POLL_S > give_up:
                    raise
            await asyncio.sleep(WAIT_FOR_MODEL_POLL_S)
