"""The error kinds: each one's HTTP status and close code, and the one mapping to the client's answer."""

from __future__ import annotations

import json

import pytest

from gateway import errors
from gateway.errors import CloseCode


@pytest.mark.parametrize(
    ("kind", "status", "close_code"),
    [
        (errors.BadRequest, 400, CloseCode.POLICY),
        (errors.Unauthorized, 401, CloseCode.POLICY),
        (errors.NotFound, 404, CloseCode.POLICY),
        (errors.RequestTimeout, 408, CloseCode.POLICY),
        (errors.TooLarge, 413, CloseCode.TOO_BIG),
        (errors.ClientClosed, 499, CloseCode.NORMAL),
        (errors.BadGateway, 502, CloseCode.SERVER_ERROR),
        (errors.Unavailable, 503, CloseCode.TRY_AGAIN),
        (errors.Overloaded, 503, CloseCode.TRY_AGAIN),
        (errors.Timeout, 504, CloseCode.SERVER_ERROR),
    ],
)
def test_each_kind_carries_its_status_and_close_code(kind: type, status: int, close_code: CloseCode) -> None:
    error = kind("what went wrong")
    assert (error.status, error.close_code, error.message) == (status, close_code, "what went wrong")
    assert isinstance(error, errors.GatewayError)


def test_loading_is_the_hf_apis_answer_with_an_estimate_of_at_least_a_second() -> None:
    error = errors.Loading("org/m", 0.2)
    assert isinstance(error, errors.Unavailable) and error.message == "Model org/m is currently loading"
    assert error.estimated_time == 1.0 and errors.Loading("org/m", 12.345).estimated_time == 12.3


def test_a_refusal_keeps_the_loaders_status() -> None:
    assert errors.Refused(422, "not audio").status == 422 and errors.Refused(403, "gated").close_code == 1011


def _body(response: object) -> dict:
    return json.loads(response.body)  # type: ignore[attr-defined]


def test_unavailable_answers_carry_retry_after_and_others_do_not() -> None:
    assert errors.answer(errors.Overloaded("full"), 5).headers["retry-after"] == "5"
    assert "retry-after" not in errors.answer(errors.BadRequest("bad"), 5).headers


def test_a_loading_answer_says_estimated_time_and_retry_after_rounds_it_up() -> None:
    response = errors.answer(errors.Loading("org/m", 12.3), 5, "rid")
    assert response.status_code == 503 and response.headers["retry-after"] == "13"
    assert _body(response) == {"error": "Model org/m is currently loading", "estimated_time": 12.3, "request_id": "rid"}


def test_the_error_header_is_one_line_of_ascii_and_bounded() -> None:
    response = errors.error_response(502, "line one\nline two é " + "x" * 1000)
    header = response.headers["x-error-message"]
    assert header.startswith("line one line two ? ") and len(header) == errors.MAX_HEADER_MESSAGE
    assert _body(response)["error"].startswith("line one\nline two é")
