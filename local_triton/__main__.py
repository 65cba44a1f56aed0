"""``python -m local_triton serve|perf``: local mode (no Docker) and Triton's perf_analyzer."""

from __future__ import annotations

import argparse
import sys

from local_triton import perf, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_triton")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_arguments(commands.add_parser("serve", help="tritonserver (pip wheel) + gateway, until Ctrl-C"))
    perf.add_arguments(commands.add_parser("perf", help="perf_analyzer against a running ensemble"))
    args = parser.parse_args(argv)
    return serve.serve(args) if args.command == "serve" else perf.run(args)


if __name__ == "__main__":
    sys.exit(main())
