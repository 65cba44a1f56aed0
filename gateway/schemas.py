"""Request and response bodies of the HF Inference API for audio classification."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from triton_steps import audio
from triton_steps.contract import TextEnum
from triton_steps.metadata import ModelMetadata


class Parameters(BaseModel):
    """The parameters huggingface_hub sends; anything else is refused."""

    model_config = ConfigDict(extra="forbid")

    top_k: int | None = Field(None, ge=1, le=2**31 - 1, strict=True)  # Triton's TOP_K is int32
    function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None


class Options(BaseModel):
    """The older HF Inference API's options, which older clients still send."""

    model_config = ConfigDict(extra="forbid")

    wait_for_model: bool = Field(False, description="wait (up to the timeout) for a loading model, not 503")
    use_cache: bool = Field(True, description="accepted, no effect: every request is computed")


class JsonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: str = Field(description="the audio file, base64-encoded", json_schema_extra={"contentEncoding": "base64"})
    parameters: Parameters | None = None
    options: Options | None = None


class Prediction(BaseModel):
    label: str
    score: float


class ErrorBody(BaseModel):
    """Every error's answer (``gateway.errors.error_response``)."""

    error: str = Field(description="what was wrong, in words")
    request_id: str | None = Field(None, description="the request's id (X-Request-Id): quote it when reporting")
    estimated_time: float | None = Field(None, description="a model loading: seconds until it is expected ready")


class ModelState(TextEnum):
    """Where a model stands, as ``GET /models`` says it."""

    LOADED = "loaded"
    LOADING = "loading"  # an on-demand id being exported by the loader, or loaded into Triton
    UNLOADED = "unloaded"  # an on-demand model that made room for others; it comes back on its next request
    FAILED = "failed"  # the loader refused it, or Triton could not load it (with the reason)


class ModelInfo(BaseModel):
    """A served model; or one that is not (``ready`` false, ``state`` says why, the rest empty). The fields
    beyond ``id``, ``ready``, ``state`` and ``error`` are the exporter's metadata (``ModelMetadata``) of the
    same names."""

    id: str
    name: str
    ready: bool
    state: ModelState = ModelState.LOADED
    error: str | None = Field(None, description="why the model could not be loaded (or exported)")
    architecture: str | None = None
    labels: list[str] | None = None
    sampling_rate: int | None = None
    function_to_apply: str | None = None
    max_seconds: float | None = None
    min_samples: int | None = None
    long_audio: dict[str, Any] | None = Field(None, description="chunk mode's window, hop and aggregation")
    window_seconds: float | None = Field(None, description="the model's own window: a live stream's default")
    precision: str | None = Field(None, description="fp32 (scores as transformers'), int8 or bf16 (gated at export)")
    engine: str | None = Field(
        None,
        description="the network's CPU engine in local mode and the slim CPU image: onnxruntime or openvino (int8: "
        "onnxruntime's dynamic int8, or NNCF's static int8 on OpenVINO)",
    )
    single_step: bool | None = Field(
        None, description="exported with --single-step: one Python step on the CPU instead of the three-step ensemble"
    )
    decoder: str | None = Field(
        None, description="what the model's requests are decoded with: FFmpeg's release, as the pipeline's command"
    )
    default: bool = Field(False, description="the model that POST / and /stream use (the gateway's default)")

    @classmethod
    def served(cls, metadata: ModelMetadata, default: bool) -> ModelInfo:
        shared = set(cls.model_fields) & set(metadata.__dataclass_fields__)
        fields = {name: getattr(metadata, name) for name in shared}
        decoder = audio.describe(metadata.sampling_rate)
        return cls(id=metadata.model_id, ready=True, decoder=decoder, default=default, **fields)

    @classmethod
    def failed(cls, name: str, reason: str) -> ModelInfo:
        return cls(id=name, name=name, ready=False, state=ModelState.FAILED, error=reason)

    @classmethod
    def not_loaded(cls, model_id: str, name: str, state: ModelState, error: str) -> ModelInfo:
        """An on-demand id that is loading, unloaded, or failed."""
        return cls(id=model_id, name=name, ready=False, state=state, error=error or None)
