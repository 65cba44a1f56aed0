"""Request and response bodies of the HF Inference API for audio classification."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Parameters(BaseModel):
    """The parameters huggingface_hub sends; anything else is refused."""

    model_config = ConfigDict(extra="forbid")

    top_k: int | None = Field(None, ge=1, strict=True)
    function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None


class JsonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: str = Field(description="the audio file, base64-encoded")
    parameters: Parameters | None = None


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
    ready: bool
