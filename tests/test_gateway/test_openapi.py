"""The OpenAPI document says what the gateway sends: schemathesis calls every documented operation of the
app in process (a stand-in Triton behind it) with generated requests, and checks each answer's status,
content type, body and headers against the document."""

from __future__ import annotations

import schemathesis
from fake_triton import FakeLoader, FakeTriton, metadata, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app

RESPONSE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
_triton = FakeTriton.serving(metadata("kws", "org/kws"))
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings(), lambda _: _triton, FakeLoader(_triton)))


@schema.parametrize()
def test_every_answer_is_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=RESPONSE_CHECKS)
