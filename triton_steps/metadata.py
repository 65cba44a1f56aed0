"""What the exporter records about a served model: written as ``contract.METADATA_FILE`` next to the ensemble
and embedded in the ensemble's config (``contract.METADATA_PARAMETER``), so the gateway reads it through Triton."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelMetadata:
    name: str  # the ensemble's name in Triton
    model_id: str  # the Hub id (or folder name) clients use: POST /models/{model_id}
    source: str  # what was exported: a Hub id or a local folder
    architecture: str  # e.g. Wav2Vec2ForSequenceClassification
    model_type: str  # e.g. wav2vec2
    feature_extractor: str  # e.g. Wav2Vec2FeatureExtractor
    sampling_rate: int
    labels: list[str]
    function_to_apply: str  # default when a request names none (transformers' default for the config)
    max_batch_size: int
    min_samples: int  # shortest accepted audio, in samples at sampling_rate
    max_seconds: float | None  # longest accepted audio (None: no limit)
    long_audio: dict[str, Any] | None = None  # chunk mode's window, hop and aggregation (None: as transformers)
    window_seconds: float | None = None  # the model's own window (long_audio.default_window): live streams' default
    precision: str = "fp32"  # int8, bf16 (--quantize): scores within the gate below, not within 1e-4
    quantization: dict[str, Any] | None = None  # int8: the export gate's top-1 agreement and max score diff
    engine: str = "onnxruntime"  # the network step's CPU engine in local mode / the slim image (triton_steps.engines)
    engine_ms: dict[str, float] = field(default_factory=dict)  # --engine auto: each engine's ms per clip, as timed
    single_step: bool = False  # --single-step: one Python step on the CPU instead of the three-step ensemble
    on_demand: bool = False  # exported by the loader for a request: the gateway may unload it when idle
    versions: dict[str, str] = field(default_factory=dict)  # library versions used to export

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(asdict(self), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        data: dict[str, Any] = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})
