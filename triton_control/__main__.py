"""``python -m triton_control trace-flags``: print tritonserver's OpenTelemetry flags for this environment (none
when no OTLP endpoint is set), for a container's shell: ``flags=$(python3 -m triton_control trace-flags) && exec
tritonserver ... $flags``. A bad ``TRITON_TRACE_RATE`` exits 2 with the reason, so the container does not start."""

from __future__ import annotations

import argparse
import os
import sys

from triton_control.server_flags import opentelemetry_flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triton_control")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("trace-flags", help="tritonserver's --trace-config flags from OTEL_EXPORTER_OTLP_ENDPOINT")
    parser.parse_args(argv)
    try:
        flags = opentelemetry_flags(dict(os.environ))
    except ValueError as error:
        parser.exit(2, f"python -m triton_control trace-flags: {error}\n")
    print(" ".join(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
