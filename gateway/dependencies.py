"""What route handlers get injected: the app's lifetime objects, and the API-token check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from opentelemetry.trace import Tracer
from starlette.requests import HTTPConnection

from gateway.admission import Admission
from gateway.errors import Unauthorized
from gateway.inference import Inference
from gateway.metrics import Metrics
from gateway.on_demand import OnDemand
from gateway.settings import Settings
from gateway.triton import Triton


@dataclass
class Services:
    """What the app holds for its lifetime (created by ``create_app``'s lifespan)."""

    settings: Settings
    triton: Triton
    metrics: Metrics
    admission: Admission
    on_demand: OnDemand  # its patterns empty unless GATEWAY_AUTOLOAD is set: then every unknown id is a 404
    tracer: Tracer  # records nothing unless OpenTelemetry's OTLP endpoint is set (gateway.tracing)
    inference: Inference  # the one inference path, for POSTs and stream windows alike

    @property
    def token_required(self) -> bool:
        token = self.settings.api_token
        return token is not None and bool(token.get_secret_value())  # set empty (as docker-compose does): off


async def get_services(connection: HTTPConnection) -> Services:  # async: sync dependencies cost a thread hop
    return connection.app.state.services  # an HTTPConnection: HTTP requests and WebSockets alike


ServicesDep = Annotated[Services, Depends(get_services)]


def token_ok(services: Services, authorization: str) -> bool:
    """Whether an ``Authorization`` value carries the configured API token (or none is configured)."""
    if not services.token_required:
        return True
    expected = services.settings.api_token.get_secret_value().encode()  # type: ignore[union-attr]
    scheme, _, presented = authorization.partition(" ")
    # "Bearer: <token>" is how the HF API docs write it; "Bearer <token>" is the standard.
    return scheme.rstrip(":").lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected)


async def check_token(request: Request, services: ServicesDep) -> None:
    """401 unless the configured API token is presented as ``Authorization: Bearer <token>``."""
    if not token_ok(services, request.headers.get("authorization", "")):
        raise Unauthorized("missing or invalid API token: send 'Authorization: Bearer <token>'")


Authorized = Depends(check_token)
