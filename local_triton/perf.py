"""Triton's perf_analyzer against an ensemble, fed a real audio file.

Newer tritonclient wheels carry no perf_analyzer (or one needing glibc 2.38), so the binary comes from the
tritonclient 2.50.0 wheel, unpacked under the work folder; it needs libb64 (Debian: libb64-0d) and a
libcudart.so.12, for which the nvidia-pytriton wheel's copy is linked in.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

from local_triton.tritonserver import wheel_dir
from triton_steps import contract
from triton_steps.contract import AUDIO

log = logging.getLogger("local_triton")

PERF_WHEEL = "tritonclient==2.50.0"


def perf_analyzer(workdir: Path) -> tuple[Path, Path]:
    """(the perf_analyzer binary, a folder for LD_LIBRARY_PATH), fetched once into ``workdir``."""
    binary = workdir / "perf_analyzer"
    libs = workdir / "lib"
    if not binary.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                "manylinux1_x86_64",
                "-d",
                str(workdir),
                PERF_WHEEL,
            ],
            check=True,
        )
        wheel = next(workdir.glob("tritonclient-2.50.0-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/bin/perf_analyzer"))
            binary.write_bytes(archive.read(member))
        binary.chmod(0o755)
        wheel.unlink()
    libs.mkdir(exist_ok=True)
    cudart = libs / "libcudart.so.12"
    if not cudart.exists():
        source = next((wheel_dir().parent.parent / "nvidia_pytriton.libs").glob("libcudart-*.so.12*"))
        cudart.symlink_to(source)
    return binary, libs


def input_data(audio: Path, target: Path) -> Path:
    """perf_analyzer's --input-data file for one BYTES element: base64 of <uint32 LE length> + bytes."""
    data = audio.read_bytes()
    encoded = base64.b64encode(struct.pack("<I", len(data)) + data).decode()
    target.write_text(json.dumps({"data": [{AUDIO.name: {"b64": encoded, "shape": [1]}}]}))
    return target


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir) / "perf"
    binary, libs = perf_analyzer(workdir)
    data = input_data(Path(args.audio), workdir / "input.json")
    env = dict(os.environ, LD_LIBRARY_PATH=f"{libs}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}")
    # Lenient stability (throughput within 100% across windows, up to 10 of them): on a small shared machine a
    # strict criterion fails outright ("Failed to obtain stable measurement") instead of printing figures.
    command = [
        str(binary),
        "-m",
        args.model,
        "-u",
        args.url,
        "-i",
        "grpc",
        "--input-data",
        str(data),
        "--concurrency-range",
        args.concurrency,
        "--measurement-interval",
        str(args.interval_ms),
        "--stability-percentage",
        "100",
        "--max-trials",
        "10",
        "-b",
        "1",
    ]
    log.info("$ %s", " ".join(command))
    return subprocess.run(command, env=env).returncode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the ensemble's Triton name")
    parser.add_argument("--audio", required=True, help="an audio file to send")
    parser.add_argument("--url", default=f"127.0.0.1:{contract.TRITON_GRPC_PORT}", help="Triton's gRPC endpoint")
    parser.add_argument(
        "--concurrency", default="1:4", help="perf_analyzer --concurrency-range start:end[:step] (step is added)"
    )
    parser.add_argument("--interval-ms", type=int, default=3000, help="measurement window per step")
    parser.add_argument("--workdir", default=".run")
