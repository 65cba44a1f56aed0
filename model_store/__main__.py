"""``python -m model_store sync [--repository R] [--triton-url U] [--interval-s S]``: keep a Triton (explicit
model control) in step with a repository (flags and environment: ``SyncSettings``);
``python -m model_store triton-url REPOSITORY``: the ``--model-repository`` value Triton needs for it."""

from __future__ import annotations

import logging
import sys
import time
from typing import Annotated

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic_settings import BaseSettings, CliApp, NoDecode, SettingsConfigDict

from model_store import location
from model_store.location import Location
from model_store.sync import SYNC_INTERVAL_S, Sync
from triton_control import TritonControl
from triton_steps import contract

USAGE = "usage: python -m model_store sync [--help] | triton-url REPOSITORY"


class SyncSettings(BaseSettings):
    """The sync's settings: ``SYNC_*`` variables (the repository from ``MODEL_REPOSITORY``), or flags."""

    model_config = SettingsConfigDict(
        env_prefix="SYNC_",
        arbitrary_types_allowed=True,
        cli_prog_name="python -m model_store sync",
        cli_kebab_case=True,
    )

    repository: Annotated[Location, BeforeValidator(location.as_location), NoDecode] = Field(
        location.DEFAULT_REPOSITORY,
        validation_alias=AliasChoices("repository", location.REPOSITORY_VARIABLE),
        description="the repository whose published models to load: a folder or s3://bucket/prefix",
        validate_default=True,
    )
    # TRITON_GRPC_URL: the name this variable had before, still read
    triton_url: str = Field(
        f"127.0.0.1:{contract.TRITON_GRPC_PORT}",
        validation_alias=AliasChoices("triton_url", "SYNC_TRITON_URL", "TRITON_GRPC_URL"),
        description="Triton's gRPC endpoint (as the gateway's GATEWAY_TRITON_URL)",
    )
    interval_s: float = Field(SYNC_INTERVAL_S, gt=0, description="seconds between manifest reads")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["triton-url"] and len(argv) == 2:
        print(location.parse(argv[1]).triton_url())
        return 0
    if argv[:1] != ["sync"]:
        print(USAGE, file=sys.stderr)
        return 2
    settings = CliApp.run(SyncSettings, cli_args=argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    syncer = Sync(settings.repository, TritonControl(settings.triton_url), settings.interval_s).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        syncer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
