"""``python -m gateway``: serve the app with uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        limit_concurrency=settings.max_connections,  # beyond it uvicorn answers 503 at once
        timeout_keep_alive=settings.keep_alive_s,
    )


if __name__ == "__main__":
    main()
