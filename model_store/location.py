"""A repository argument (a folder, or ``s3://bucket/prefix``) and the URL Triton reads it from."""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

S3_SCHEME = "s3://"
# boto3 reads the first (since 1.28); Triton has no endpoint variable of its own, so it gets it in its URL.
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


REPOSITORY_VARIABLE = "MODEL_REPOSITORY"
DEFAULT_REPOSITORY = "model_repository"


def add_repository_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--repository`` as every command takes it (``args.repository`` is a ``Location``): env
    MODEL_REPOSITORY, default ``model_repository``; ``what`` says what the command does with it."""
    parser.add_argument(
        "--repository",
        type=parse,
        default=os.environ.get(REPOSITORY_VARIABLE, DEFAULT_REPOSITORY),
        help=f"{what}: a folder or s3://bucket/prefix (S3 endpoint and credentials from the AWS_* variables) "
        f"(env {REPOSITORY_VARIABLE}; default: {DEFAULT_REPOSITORY})",
    )


class LocationError(ValueError):
    """A repository argument that names no usable place."""


@dataclass(frozen=True)
class Location:
    """A local folder (``path``) or an S3 bucket and key prefix (``bucket``, ``prefix``)."""

    path: Path | None = None
    bucket: str = ""
    prefix: str = ""  # no leading or trailing slash; "" for the bucket's root
    endpoint: str = ""  # an S3-compatible store's URL given in Triton's form; "": from the environment

    @property
    def endpoint_url(self) -> str | None:
        """The S3 endpoint: the one in the repository argument, else the environment's (unset: AWS itself)."""
        return self.endpoint or endpoint_url()

    @property
    def is_s3(self) -> bool:
        return self.path is None

    def key(self, *parts: str) -> str:
        """The S3 key of a path inside the repository."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        """The repository argument that names this location again (``parse(str(location)) == location``)."""
        if self.path is not None:
            return str(self.path)
        return f"{S3_SCHEME}{'/'.join(p for p in (self.endpoint, self.bucket, self.prefix) if p)}"

    def triton_url(self) -> str:
        """What ``tritonserver --model-repository`` takes: a folder, or ``s3://[endpoint/]bucket/prefix``."""
        if self.path is not None:
            return str(self.path.resolve())
        endpoint = self.endpoint_url
        # Triton's own form for a non-AWS endpoint: s3://http://host:port/bucket/prefix
        host = f"{endpoint.rstrip('/')}/" if endpoint else ""
        return f"{S3_SCHEME}{host}{'/'.join(p for p in (self.bucket, self.prefix) if p)}"


def endpoint_url() -> str | None:
    """The S3 endpoint from the environment (unset: AWS itself)."""
    return next((os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), None)


def as_location(value: object) -> object:
    """A repository setting as a ``Location`` (settings' validators): text is parsed, a ``Location`` kept."""
    return parse(value) if isinstance(value, (str, os.PathLike)) else value


def parse(value: str | os.PathLike[str]) -> Location:
    """``s3://bucket[/prefix]``, Triton's ``s3://http(s)://host:port/bucket[/prefix]`` (the same bucket, at that
    endpoint), or a folder path."""
    text = os.fspath(value)
    if not text.startswith(S3_SCHEME):
        return Location(path=Path(text))
    rest, endpoint = text[len(S3_SCHEME) :], ""
    triton_form = re.match(r"(https?://[^/]+)/?", rest)
    if triton_form:
        endpoint, rest = triton_form.group(1), rest[triton_form.end() :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise LocationError(
            f"{text!r}: an S3 repository is s3://BUCKET[/PREFIX], or s3://http(s)://HOST:PORT/BUCKET[/PREFIX]"
        )
    return Location(bucket=bucket, prefix=prefix.strip("/"), endpoint=endpoint)
