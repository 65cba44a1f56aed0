"""Parsing of the HF Inference API request body (no Triton needed)."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.errors import GatewayError
from gateway.request_body import parse

AUDIO = b"RIFF....WAVEfmt "


def _json(inputs: object = None, **extra: object) -> bytes:
    body = {"inputs": base64.b64encode(AUDIO).decode() if inputs is None else inputs, **extra}
    return json.dumps(body).encode()


@pytest.mark.parametrize("content_type", [None, "audio/wav", "application/octet-stream", "audio/flac"])
def test_raw_bytes_with_any_or_no_content_type(content_type: str | None) -> None:
    request = parse(AUDIO, content_type)
    assert request.audio == AUDIO and request.parameters.top_k is None


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", None])
def test_json_with_parameters(content_type: str | None) -> None:
    body = _json(parameters={"top_k": 2, "function_to_apply": "sigmoid"})
    request = parse(body, content_type)
    assert request.audio == AUDIO
    assert (request.parameters.top_k, request.parameters.function_to_apply) == (2, "sigmoid")


def test_json_without_parameters() -> None:
    assert parse(_json(), "application/json").parameters.function_to_apply is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (b'{"parameters": {}}', "inputs is required"),
        (_json(inputs="@@not base64@@"), "not valid base64"),
        (_json(parameters={"top_k": 0}), "parameters.top_k"),
        (_json(parameters={"top_k": "3"}), "parameters.top_k"),
        (_json(parameters={"function_to_apply": "relu"}), "parameters.function_to_apply"),
        (_json(parameters={"temperature": 1}), "unknown parameter 'temperature'; allowed parameters: top_k, "),
        (_json(options={"wait_for_model": True}), "unknown field 'options'"),
    ],
)
def test_bad_json_bodies_are_400_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(GatewayError) as error:
        parse(body, "application/json")
    assert error.value.status == 400
    assert message in error.value.message
