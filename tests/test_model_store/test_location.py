"""Repository arguments: a folder, s3://bucket/prefix, and Triton's own s3://http(s)://host:port/bucket/prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store import location


@pytest.mark.parametrize(
    "text, bucket, prefix, endpoint",
    [
        ("s3://bars/models", "bars", "models", ""),
        ("s3://bars", "bars", "", ""),
        ("s3://http://minio:9000/bars/models/triton", "bars", "models/triton", "http://minio:9000"),
        ("s3://https://s3.example.com/bars", "bars", "", "https://s3.example.com"),
    ],
)
def test_s3_forms_round_trip(text: str, bucket: str, prefix: str, endpoint: str, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    parsed = location.parse(text)
    assert (parsed.bucket, parsed.prefix, parsed.endpoint) == (bucket, prefix, endpoint)
    assert str(parsed) == text and location.parse(str(parsed)) == parsed  # the bucket before the prefix
    assert parsed.triton_url() == text  # what Triton takes is what was given
    assert parsed.endpoint_url == (endpoint or None)


def test_the_environments_endpoint_applies_unless_the_url_names_one(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env:9000")
    assert location.parse("s3://bars/m").triton_url() == "s3://http://env:9000/bars/m"
    assert location.parse("s3://http://own:1/bars/m").endpoint_url == "http://own:1"


@pytest.mark.parametrize("text", ["s3://", "s3://http://host:9000/", "s3:///prefix"])
def test_an_s3_url_without_a_bucket_is_refused(text: str) -> None:
    with pytest.raises(location.LocationError, match="BUCKET"):
        location.parse(text)


def test_a_folder_is_a_folder() -> None:
    assert location.parse("model_repository") == location.Location(path=Path("model_repository"))
