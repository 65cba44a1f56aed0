"""Object storage through boto3: upload a staged model directory, list, read, delete.

Endpoint, region and credentials come from boto3's standard sources (``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, profiles, instance roles).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from model_store.location import Location
from triton_steps import contract

# Uploaded last within a model: Triton decides what a directory is from its config.


class StorageError(RuntimeError):
    """Object storage refused or failed; the message says which bucket and why."""


def _client(location: Location):  # noqa: ANN202 - boto3 clients are generated classes
    return boto3.client("s3", endpoint_url=location.endpoint_url)


def _fail(location: Location, error: Exception) -> StorageError:
    return StorageError(f"{location}: {error}")


def keys(location: Location, *parts: str) -> Iterator[str]:
    """Every key under ``location``/``parts`` (paginated)."""
    prefix = location.key(*parts) + "/" if (location.prefix or parts) else ""
    try:
        for page in _client(location).get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]
    except (BotoCoreError, ClientError) as error:
        raise _fail(location, error) from None


def read(location: Location, *parts: str) -> bytes | None:
    """An object's bytes, or None when there is none."""
    try:
        return _client(location).get_object(Bucket=location.bucket, Key=location.key(*parts))["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise _fail(location, error) from None
    except BotoCoreError as error:
        raise _fail(location, error) from None


def write(location: Location, data: bytes, *parts: str) -> None:
    try:
        _client(location).put_object(Bucket=location.bucket, Key=location.key(*parts), Body=data)
    except (BotoCoreError, ClientError) as error:
        raise _fail(location, error) from None


def upload_model(location: Location, name: str, folder: Path) -> None:
    """Upload one model directory: its files first, ``config.pbtxt`` last, then remove stale objects.

    Each object appears whole (a PUT is atomic), but the directory does not: a Triton in explicit mode
    loads it only when told, after this returns (see ``model_store.sync``).
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == contract.CONFIG_FILE)
    client = _client(location)
    written = set()
    try:
        for path in files:
            key = location.key(name, path.relative_to(folder).as_posix())
            client.upload_file(str(path), location.bucket, key)
            written.add(key)
        for key in set(keys(location, name)) - written:
            client.delete_object(Bucket=location.bucket, Key=key)
    except (BotoCoreError, ClientError) as error:
        raise _fail(location, error) from None
