"""gateway.http_server subclasses uvicorn's httptools protocol, a private API: what it relies on, checked against
the installed uvicorn, so an upgrade that moves it fails here by name (pyproject pins the tested range)."""

from __future__ import annotations

import asyncio
import inspect

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.http_server import GatewayProtocol

OVERRIDDEN = (
    "connection_made",
    "data_received",
    "on_headers_complete",
    "send_400_response",
    "on_response_complete",
    "connection_lost",
)
ATTRIBUTES_SET_BY_UVICORN = ("transport", "connections", "tasks", "cycle", "pipeline", "loop", "app")


def test_the_methods_gateway_protocol_overrides_exist_with_the_same_signatures() -> None:
    for name in OVERRIDDEN:
        theirs = getattr(HttpToolsProtocol, name)
        ours = getattr(GatewayProtocol, name)
        assert ours is not theirs, name
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters), name


def test_the_attributes_it_reads_are_there_on_a_live_protocol() -> None:
    """A protocol built as uvicorn builds it; ``url`` appears once a request starts."""

    async def build() -> HttpToolsProtocol:
        config = Config(app=lambda scope, receive, send: None, http="httptools")
        config.load()
        return HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})

    protocol = asyncio.run(build())
    for name in ATTRIBUTES_SET_BY_UVICORN:
        assert hasattr(protocol, name), name
    protocol.on_message_begin()
    assert protocol.url == b""
    source = inspect.getsource(HttpToolsProtocol.on_headers_complete)
    assert "self.app" in source  # the connection cap swaps self.app for one request
