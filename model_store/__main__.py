"""``python -m model_store sync``: keep a Triton (explicit model control) in step with a repository;
``python -m model_store triton-url REPOSITORY``: the ``--model-repository`` value Triton needs for it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from model_store import location
from model_store.sync import Sync
from triton_control import TritonControl
from triton_steps import contract


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_store")
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="load what the repository's manifest publishes, until stopped")
    location.add_repository_argument(sync, "the repository whose published models to load")
    sync.add_argument(
        "--triton-url",
        default=os.environ.get("TRITON_GRPC_URL", f"127.0.0.1:{contract.TRITON_GRPC_PORT}"),
        help=f"Triton's gRPC endpoint (env TRITON_GRPC_URL; default: 127.0.0.1:{contract.TRITON_GRPC_PORT})",
    )
    sync.add_argument("--interval", type=float, default=5.0, help="seconds between manifest reads (default: 5)")
    url = commands.add_parser("triton-url", help="print what tritonserver --model-repository takes for REPOSITORY")
    url.add_argument("repository", help="a folder or s3://bucket/prefix (endpoint from AWS_ENDPOINT_URL)")
    args = parser.parse_args(argv)
    if args.command == "triton-url":
        print(location.parse(args.repository).triton_url())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    syncer = Sync(
        args.repository,
        TritonControl(args.triton_url),
        args.interval,
    ).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        syncer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
