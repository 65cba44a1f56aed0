"""Two commands for a container's shell that starts tritonserver, so that compose and Kubernetes start it as
``make serve`` does (``local_triton``):

- ``python -m triton_control trace-flags``: tritonserver's OpenTelemetry flags for this environment (none when
  no OTLP endpoint is set). A bad ``TRITON_TRACE_RATE`` exits 2 with the reason, so the container does not start.
- ``python -m triton_control steps-env``: the ``NAME=value`` words the steps need in tritonserver's environment
  (``triton_steps.blas``; usually none), for ``env``.

    flags=$(python3 -m triton_control trace-flags) && steps_env=$(python3 -m triton_control steps-env) \\
        && exec env $steps_env tritonserver ... $flags
"""

from __future__ import annotations

import argparse
import os
import sys

from triton_control.server_flags import opentelemetry_flags
from triton_steps.blas import steps_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triton_control")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("trace-flags", help="tritonserver's --trace-config flags from OTEL_EXPORTER_OTLP_ENDPOINT")
    commands.add_parser("steps-env", help="NAME=value words for tritonserver's environment (OPENBLAS_CORETYPE)")
    command = parser.parse_args(argv).command
    if command == "steps-env":
        print(" ".join(f"{name}={value}" for name, value in steps_environment(dict(os.environ)).items()))
        return 0
    try:
        flags = opentelemetry_flags(dict(os.environ))
    except ValueError as error:
        parser.exit(2, f"python -m triton_control trace-flags: {error}\n")
    print(" ".join(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
