"""``python -m local_triton serve|perf|install``: local mode (no Docker), Triton's perf_analyzer, and the
pip wheel's tritonserver laid out as in NGC's image (for docker/triton-cpu.Dockerfile)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from local_triton import perf, stack
from local_triton.tritonserver import install_layout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_triton")
    commands = parser.add_subparsers(dest="command", required=True)
    stack.add_arguments(commands.add_parser("serve", help="tritonserver (pip wheel) + gateway, until Ctrl-C"))
    perf.add_arguments(commands.add_parser("perf", help="perf_analyzer against a running ensemble"))
    install = commands.add_parser("install", help="bin/tritonserver and backends/ under PREFIX, as in NGC's image")
    install.add_argument("prefix", type=Path, help="e.g. /opt/tritonserver (the binary's default backend folder)")
    args = parser.parse_args(argv)
    stack.configure_logging()
    if args.command == "install":
        install_layout(args.prefix)
        return 0
    return stack.serve(args) if args.command == "serve" else perf.run(args)


if __name__ == "__main__":
    sys.exit(main())
