"""What an idle ``make serve`` costs (``make bench-idle``): the CPU used by the whole stack (the launcher with
its model sync and stub healer, tritonserver, every Python stub, the gateway) while it serves real-size
models (random weights) and nobody sends a request.

    .venv/bin/python benchmarks/idle_cost.py [--models ast-base,ast-base,wav2vec2-base,hubert-base,whisper-base]

The checkpoints and their exports are kept in ``--workdir`` (default ``.run/idle-cost``), so a second run
starts at once. It prints the stack's CPU share of the machine and Triton's inference count over the idle
window (the health machinery must send none), and writes ``idle_cost.json`` into ``--results``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks import real_size_models
from export.exporter import ExportOptions, export_model
from local_triton.tritonserver import free_port
from triton_control import TritonControl

ROOT = Path(__file__).resolve().parents[1]


def _tree_cpu_seconds(root: int) -> tuple[float, int]:
    """CPU seconds (user + system) of ``root`` and all its descendants alive now, and how many they are."""
    total, count = 0.0, 0
    try:
        tree = psutil.Process(root)
        processes = [tree, *tree.children(recursive=True)]
    except psutil.Error:
        return total, count
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # gone meanwhile
            continue
        total += times.user + times.system
        count += 1
    return total, count


def _inferences(grpc_port: int) -> int:
    with TritonControl(f"127.0.0.1:{grpc_port}") as control:
        return sum(counted.inferences for counted in control.statistics().values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ast-base,ast-base,wav2vec2-base,hubert-base,whisper-base")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run" / "idle-cost")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    repository = args.workdir / "model_repository"
    models = args.models.split(",")
    for index, model in enumerate(models):
        name = f"{model}-{index}"
        if not (repository / name / "config.pbtxt").exists():
            print(f"exporting {name} (real-size {model}, random weights) ...", flush=True)
            checkpoint = real_size_models.build(model, args.workdir / "checkpoints" / model)
            export_model(str(checkpoint), repository, ExportOptions(name=name))

    ports = {name: free_port() for name in ("HTTP_PORT", "GRPC_PORT", "METRICS_PORT", "GATEWAY_PORT")}
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(ROOT),
        "serve",
        f"VENV={sys.prefix}",
        f"REPOSITORY={repository}",
        f"WORKDIR={args.workdir / 'serve'}",
        *(f"{k}={v}" for k, v in ports.items()),
    ]
    serve = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        for line in serve.stdout:
            print(line, end="", flush=True)
            if line.startswith("ready: "):
                break
        else:
            raise SystemExit("make serve stopped before it was ready")
        time.sleep(10)  # let start-up work (first sync round, imports) settle
        cpu_before, processes = _tree_cpu_seconds(serve.pid)
        inferences_before = _inferences(ports["GRPC_PORT"])
        started = time.monotonic()
        time.sleep(args.idle_seconds)
        wall = time.monotonic() - started
        cpu_after, _ = _tree_cpu_seconds(serve.pid)
        inferences = _inferences(ports["GRPC_PORT"]) - inferences_before
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        serve.communicate(timeout=120)
    cpus = os.cpu_count() or 1
    share = (cpu_after - cpu_before) / (wall * cpus)
    result = {
        "models": [f"{m}-{i}" for i, m in enumerate(models)],
        "processes": processes,
        "idle_seconds": round(wall, 1),
        "cpu_seconds": round(cpu_after - cpu_before, 3),
        "cpus": cpus,
        "machine_share": round(share, 5),
        "inferences_during_idle": inferences,
    }
    print(json.dumps(result, indent=2))
    print(
        f"idle make serve with {len(models)} real-size models: {100 * share:.2f}% of {cpus} CPUs "
        f"({result['cpu_seconds']} CPU-s in {wall:.0f} s, {processes} processes), {inferences} inferences"
    )
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "idle_cost.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
