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
        (_json(options={"use_gpu": True}), "unknown option 'use_gpu'; allowed options: wait_for_model, use_cache"),
        (_json(parameters={"top_k": 2**32 + 1}), "parameters.top_k"),  # beyond Triton's int32: never wrapped
        (b'{"inputs": "", "parameters": {"top_k": ' + b"9" * 5000 + b"}}", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (_json(extra=1), "unknown field 'extra'; allowed: inputs, parameters, options"),
    ],
)
def test_bad_json_bodies_are_400_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(GatewayError) as error:
        parse(body, "application/json")
    assert error.value.status == 400
    assert message in error.value.message


def test_options_of_the_older_api_are_accepted() -> None:
    request = parse(_json(options={"wait_for_model": True, "use_cache": False}), "application/json")
    assert request.options.wait_for_model and not request.options.use_cache
    assert not parse(_json(), "application/json").options.wait_for_model


def test_parameters_in_the_query_string_for_raw_and_json_bodies() -> None:
    raw = parse(AUDIO, None, {"top_k": "3", "function_to_apply": "sigmoid"})
    assert (raw.parameters.top_k, raw.parameters.function_to_apply) == (3, "sigmoid")
    body_wins = parse(_json(parameters={"top_k": 1}), "application/json", {"top_k": "3"})
    assert body_wins.parameters.top_k == 1
    merged = parse(_json(parameters={"top_k": 1}), "application/json", {"function_to_apply": "none"})
    assert (merged.parameters.top_k, merged.parameters.function_to_apply) == (1, "none")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"top_k": "three"}, "top_k in the query string must be an integer"),
        ({"top_k": "0"}, "parameters.top_k"),
        ({"temperature": "1"}, "unknown parameter 'temperature'"),
    ],
)
def test_bad_query_parameters_are_400(query: dict[str, str], message: str) -> None:
    with pytest.raises(GatewayError) as error:
        parse(AUDIO, None, query)
    assert error.value.status == 400 and message in error.value.message


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": "", ' + b", ".join(b'"k%d": 0' % i for i in range(1_000_000)) + b"}",  # 1M unknown keys
        b'{"inputs": [' + b"0," * 1_000_000 + b"0]}",  # 1M array items
    ],
)
def test_json_bombs_are_refused_before_parsing_with_a_short_message(body: bytes) -> None:
    with pytest.raises(GatewayError) as error:
        parse(body, "application/json")
    assert error.value.status == 400 and "more than 100 keys and items" in error.value.message
    assert len(error.value.message) < 300


def test_errors_name_a_few_problems_and_cut_long_names() -> None:
    body = _json(parameters={f"p{i}": 1 for i in range(20)} | {"x" * 10_000: 1})
    with pytest.raises(GatewayError) as error:
        parse(body, "application/json")
    message = error.value.message
    assert message.count("unknown parameter") == 3 and message.endswith("and 18 more")
    assert len(message) < 500
    with pytest.raises(GatewayError) as error:
        parse(_json(parameters={"y" * 10_000: 1}), "application/json")
    assert f"unknown parameter '{'y' * 40}...'" in error.value.message and len(error.value.message) < 200
