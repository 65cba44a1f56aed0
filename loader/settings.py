"""The loader's settings: environment variables (``LOADER_*``; the repository from ``MODEL_REPOSITORY``, the Hub
token from ``HF_TOKEN``), each also a flag of ``python -m loader`` (pydantic-settings derives the command line)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model_store.location import DEFAULT_REPOSITORY, REPOSITORY_VARIABLE, Location, as_location
from triton_steps.contract import DEFAULT_LOADER_PORT


class LoaderSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOADER_",
        frozen=True,
        arbitrary_types_allowed=True,
        cli_prog_name="python -m loader",
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )

    location: Annotated[Location, BeforeValidator(as_location), NoDecode] = Field(
        DEFAULT_REPOSITORY,
        validation_alias=AliasChoices("repository", REPOSITORY_VARIABLE),
        description="the Triton repository exports go into: a folder or s3://bucket/prefix",
        validate_default=True,
    )
    token: SecretStr | None = Field(None, validation_alias="HF_TOKEN", description="Hub token (env HF_TOKEN)")
    host: str = Field("127.0.0.1", description="address the loader listens on")
    port: int = Field(DEFAULT_LOADER_PORT, description="port the loader listens on")
    max_exports: int = Field(
        1, ge=1, description="exports at once (each holds a checkpoint and its ONNX twin in memory)"
    )
    max_queue: int = Field(8, ge=0, description="models waiting for an export; beyond, 503")
    max_gb: float = Field(4.0, gt=0, description="largest checkpoint (its weights, GB) exported")
    allow_pickle: bool = Field(
        False,
        description="also export checkpoints whose weights are only pickle files (loading them runs code from "
        "the file)",
    )
    failure_ttl_s: float = Field(600.0, ge=0, description="seconds a refusal or failed export is answered from memory")
    state_dir: Path = Field(
        Path(tempfile.gettempdir()) / "hf-audio-triton-loader",
        description="what outlives a loader restart: one lock per id being exported (no two exports of an id at "
        "once, across restarts) and the learned export times",
    )

    @property
    def max_bytes(self) -> int:
        return int(self.max_gb * 1e9)

    @property
    def hub_token(self) -> str | None:
        return self.token.get_secret_value() if self.token else None
