"""Request and response bodies of the HF Inference API for audio classification."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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

    inputs: str = Field(description="the audio file, base64-encoded")
    parameters: Parameters | None = None
    options: Options | None = None


class Prediction(BaseModel):
    label: str
    score: float


class ErrorBody(BaseModel):
    error: str


class ModelInfo(BaseModel):
    id: str
    name: str
    architecture: str
    labels: list[str]
    sampling_rate: int
    function_to_apply: str
    max_seconds: float | None
    min_samples: int
    long_audio: dict[str, Any] | None = Field(None, description="chunk mode's window, hop and aggregation")
    ready: bool
