"""``python -m loader``: the on-demand export service the gateway asks (see ``loader.app``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from loader.app import create_app
from loader.jobs import LoaderSettings
from model_store import location
from triton_steps.contract import DEFAULT_LOADER_PORT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = LoaderSettings(location.parse(location.DEFAULT_REPOSITORY))
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m loader", description=__doc__)
    location.add_repository_argument(parser, "the Triton repository exports go into")
    parser.add_argument(
        "--host", default=env("LOADER_HOST", "127.0.0.1"), help="env LOADER_HOST (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=int(env("LOADER_PORT", DEFAULT_LOADER_PORT)),
        help="env LOADER_PORT (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--max-exports", type=int, default=int(env("LOADER_MAX_EXPORTS", defaults.max_exports)),
        help="exports at once (env LOADER_MAX_EXPORTS; default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--max-queue", type=int, default=int(env("LOADER_MAX_QUEUE", defaults.max_queue)),
        help="models waiting for an export; beyond, 503 (env LOADER_MAX_QUEUE; default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--max-gb", type=float, default=float(env("LOADER_MAX_GB", defaults.max_bytes / 1e9)),
        help="largest checkpoint (its weights, GB) exported (env LOADER_MAX_GB; default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--failure-ttl", type=float, default=float(env("LOADER_FAILURE_TTL_S", defaults.failure_ttl_s)),
        help="seconds a refusal or failed export is answered from memory (env LOADER_FAILURE_TTL_S; "
        "default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-pickle", action="store_true", default=env("LOADER_ALLOW_PICKLE", "") in ("1", "true"),
        help="also export checkpoints whose weights are only pickle files (loading them runs code from the file) "
        "(env LOADER_ALLOW_PICKLE=1)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    settings = LoaderSettings(
        location=args.repository,
        token=os.environ.get("HF_TOKEN") or None,
        max_exports=args.max_exports,
        max_queue=args.max_queue,
        max_bytes=int(args.max_gb * 1e9),
        allow_pickle=args.allow_pickle,
        failure_ttl_s=args.failure_ttl,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
