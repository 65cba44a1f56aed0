"""``python -m gateway``: serve the app on GATEWAY_HOST:GATEWAY_PORT (see ``gateway.http_server``)."""

from __future__ import annotations

from gateway.http_server import serve
from gateway.settings import from_environment

if __name__ == "__main__":
    serve(from_environment())
