"""``python -m loader``: the on-demand export service the gateway asks (see ``loader.app``); its flags and
environment variables are ``loader.settings.LoaderSettings``'."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic_settings import CliApp

from loader.app import create_app
from loader.settings import LoaderSettings


def settings_from(argv: list[str] | None = None) -> LoaderSettings:
    """The settings: the environment's, overridden by the command line's ``argv`` (default: ``sys.argv``)."""
    return CliApp.run(LoaderSettings, cli_args=sys.argv[1:] if argv is None else argv)


def main(argv: list[str] | None = None) -> int:
    settings = settings_from(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
