"""Side by side, in one run, the default model's clip classified by
  1. transformers' pipeline("audio-classification") in-process (the competitor),
  2. Triton directly (gRPC asyncio client), with the shipped three-step ensemble and with the same checkpoint
     exported ``--single-step`` (one Python step: decode, features, network, scores),
  3. the gateway (HTTP -> gateway -> Triton) in front of each, with 1 and with 2 worker processes
     (GATEWAY_WORKERS),
at concurrency 1 and 8, the layouts in turn for 3 rounds (each cell the median round), each round of Triton
direct after a round of the pipeline (so that a machine whose speed drifts, as shared ones do, moves both alike).
Beside them, the floor: a model with the same inputs, outputs and labels that computes nothing
(``benchmarks/floor_model.py``), what a request costs the stack itself, directly and through the gateway.
Prints p50 / p99 latency, throughput, Triton's CPU time per request (the server and its Python stubs), the
ratios, and at c=1 how a request's time splits between the stack's floor and the work.

The HTTP client is aiohttp: httpx, as a load generator on the same 2 cores, cost as much CPU as the gateway
itself (c=8: 250-320 req/s through the gateway with httpx, 400-500 with aiohttp).

    .venv/bin/python -m benchmarks.serving_latency [--model keyword-spotter] [--audio samples/yes.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from benchmarks import measure
from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, Ports, free_port, http_ok
from triton_control import AsyncTritonControl
from triton_steps import contract
from triton_steps.audio import load
from triton_steps.metadata import ModelMetadata

ROOT = Path(__file__).resolve().parents[1]

CONCURRENCY = (1, 8)
ROUNDS = 3
SINGLE_STEP_SUFFIX = "-single-step"
FLOOR_SUFFIX = "-floor"
FLOOR_MODEL = ROOT / "benchmarks" / "floor_model.py"
FLOOR = "floor (no work)"


async def http_post(session: aiohttp.ClientSession, url: str, data: bytes) -> None:
    async with session.post(url, data=data) as response:
        await response.read()
        response.raise_for_status()


def triton_cpu_s(server: LocalTriton) -> float:
    """CPU seconds used so far by the tritonserver process and its Python stubs."""
    assert server.process is not None
    return measure.cpu_s(server.process.pid)


PIPELINE = "transformers pipeline, in process"


async def served(
    triton: LocalTriton,
    gateway_url: str | None,
    layouts: dict[str, str],
    audio: bytes,
    budget: tuple[int, float],
    pipeline: Callable[[], measure.Result] | None = None,
) -> dict[str, dict[str, measure.Result]]:
    """Triton direct (when ``gateway_url`` is None) or through the gateway: each layout's model (layout -> Triton
    name) at each concurrency, the layouts in turn for ``ROUNDS`` rounds (a drifting machine moves both alike);
    each cell the median round, printed with Triton's CPU time per request. ``pipeline`` (one round of the
    competitor at c=1) is measured first in each round, so that the ratios compare figures taken together."""
    rounds: dict[str, dict[str, list[measure.Result]]] = {layout: {} for layout in layouts}
    cpu_ms: dict[str, dict[str, list[float]]] = {layout: {} for layout in layouts}
    async with AsyncTritonControl(triton.grpc_url) as grpc, aiohttp.ClientSession() as http:
        for _ in range(ROUNDS):
            if pipeline is not None:
                rounds.setdefault(PIPELINE, {}).setdefault("c1", []).append(pipeline())
            for layout, model in layouts.items():

                async def call(model: str = model) -> None:
                    if gateway_url is None:
                        await grpc.classify(model, audio)
                    else:
                        await http_post(http, f"{gateway_url}/models/{model}", audio)

                for concurrency in CONCURRENCY:
                    key, cpu = f"c{concurrency}", triton_cpu_s(triton)
                    result = await measure.under_load(call, concurrency, *budget)
                    rounds[layout].setdefault(key, []).append(result)
                    cpu_ms[layout].setdefault(key, []).append((triton_cpu_s(triton) - cpu) / result.requests * 1000)
    results = {}
    for layout in rounds:
        print(f"  {layout}", flush=True)
        results[layout] = {key: measure.median(by_round) for key, by_round in rounds[layout].items()}
        for key, result in results[layout].items():
            cpu = f"   Triton CPU {statistics.median(cpu_ms[layout][key]):5.2f} ms/request" if layout in layouts else ""
            print(f"    {key:<3} {result.line()}{cpu}")
    return results


def pipeline_round(checkpoint: str, audio: bytes, budget: tuple[int, float]) -> Callable[[], measure.Result]:
    """One round of transformers' pipeline on ``audio``, in this process, one clip at a time."""
    from transformers import pipeline

    classifier = pipeline("audio-classification", model=checkpoint, device="cpu")
    waveform = load(audio, classifier.feature_extractor.sampling_rate)  # decode once; the pipeline gets arrays
    return lambda: measure.serial(lambda: classifier(waveform.copy()), *budget)


def repository_with_single_step(repository: Path, model: str, checkpoint: str, workdir: Path) -> Path:
    """A copy of ``model``'s ensemble from ``repository``, beside ``checkpoint`` exported ``--single-step`` as
    ``model`` + SINGLE_STEP_SUFFIX and the floor model as ``model`` + FLOOR_SUFFIX (the single step's config,
    labels and metadata, ``FLOOR_MODEL`` for its code)."""
    from export import model_configs
    from export.exporter import ExportOptions, export_model

    both = workdir / "repository"
    shutil.rmtree(both, ignore_errors=True)
    for name in contract.StepNames(model).all():
        shutil.copytree(repository / name, both / name, ignore=shutil.ignore_patterns("__pycache__"))
    single_step = model + SINGLE_STEP_SUFFIX
    export_model(checkpoint, both, ExportOptions(name=single_step, single_step=True))
    floor = both / (model + FLOOR_SUFFIX)
    shutil.copytree(both / single_step, floor, ignore=shutil.ignore_patterns("__pycache__", "*.onnx"))
    config = model_configs.parse((floor / contract.CONFIG_FILE).read_text())
    metadata = ModelMetadata.from_json(config.parameters[contract.METADATA_PARAMETER].string_value)
    metadata = dataclasses.replace(metadata, name=floor.name, model_id=floor.name)
    config.name = floor.name
    config.parameters[contract.METADATA_PARAMETER].string_value = metadata.to_json(None)
    (floor / contract.CONFIG_FILE).write_text(model_configs.to_text(config))
    (floor / contract.METADATA_FILE).write_text(metadata.to_json())
    shutil.copy(FLOOR_MODEL, floor / contract.VERSION_DIR / contract.PYTHON_MODEL_FILE)
    return both


def measured(
    repository: Path,
    workdir: Path,
    layouts: dict[str, str],
    audio: bytes,
    budget: tuple[int, float],
    checkpoint: str,
    workers: list[int],
) -> tuple[measure.Result, dict[str, dict[str, measure.Result]]]:
    """The pipeline's c=1 baseline, and each layout's results Triton direct (``triton <layout>``) and through
    the gateway with each worker count (``gateway x<workers> <layout>``)."""
    pipeline = pipeline_round(checkpoint, audio, budget)
    results: dict[str, dict[str, measure.Result]] = {}
    with LocalTriton(repository, workdir, Ports(free_port(), free_port(), free_port())) as triton:
        print("Triton direct (gRPC), each round after a round of the pipeline", flush=True)
        direct = asyncio.run(served(triton, None, layouts, audio, budget, pipeline))
        baseline = direct.pop(PIPELINE)["c1"]
        for layout, by_concurrency in direct.items():
            results[f"triton {layout}"] = by_concurrency
        for count in workers:
            log = workdir / f"gateway-{count}.log"
            with GatewayProcess(triton.grpc_url, free_port(), log, workers=str(count)) as gateway:
                deadline = time.monotonic() + 60
                while not http_ok(f"{gateway.url}/ready"):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the gateway did not become ready; see {log}")
                    time.sleep(0.2)
                print(f"gateway (HTTP) -> Triton, {count} worker(s)", flush=True)
                for layout, by_concurrency in asyncio.run(served(triton, gateway.url, layouts, audio, budget)).items():
                    results[f"gateway x{count} {layout}"] = by_concurrency
    return baseline, results


def report(baseline: measure.Result, results: dict[str, dict[str, measure.Result]], layouts: list[str]) -> None:
    """Each layout against the pipeline, the gateway against Triton, and at c=1 the floor and the work."""
    gateways = [name for name in results if name.startswith("gateway")]
    print("ratios:")
    for concurrency in CONCURRENCY:
        key = f"c{concurrency}"
        for layout in layouts:
            direct = results[f"triton {layout}"][key]
            print(f"  {key} Triton direct, {layout}: {direct.clips_per_s / baseline.clips_per_s:.2f}x the pipeline")
            for name in (n for n in gateways if n.endswith(layout)):
                result = results[name][key]
                print(
                    f"  {key} {name}: p50 {result.p50_ms - direct.p50_ms:+.2f} ms over Triton, "
                    f"throughput {result.clips_per_s / direct.clips_per_s:.0%} of Triton's, "
                    f"{result.clips_per_s / baseline.clips_per_s:.2f}x the pipeline"
                )
    print("c1, where a request's p50 goes (the floor: the stack with no work done):")
    floor = results[f"triton {FLOOR}"]["c1"].p50_ms
    print(f"  the pipeline: {baseline.p50_ms:.2f} ms")
    print(f"  Triton direct, {FLOOR}: {floor:.2f} ms")
    for name in (n for n in gateways if n.endswith(FLOOR)):
        through = results[name]["c1"].p50_ms
        print(f"  {name}: {through:.2f} ms, of which the gateway {through - floor:.2f} ms")
    for layout in layouts:
        p50 = results[f"triton {layout}"]["c1"].p50_ms
        print(f"  Triton direct, {layout}: {p50:.2f} ms = the floor + {p50 - floor:.2f} ms of work")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repository", default=str(ROOT / "model_repository"))
    parser.add_argument("--model", default="keyword-spotter")
    parser.add_argument("--checkpoint", default=str(ROOT / "keyword_spotter" / "checkpoint"))
    parser.add_argument("--audio", default=str(ROOT / "samples" / "yes.wav"))
    parser.add_argument("--requests", type=int, default=150, help="requests per measurement and round, at least")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement and round, at least")
    parser.add_argument("--workers", default="1,2", help="gateway worker counts to compare")
    args = parser.parse_args()
    audio, budget = Path(args.audio).read_bytes(), (args.requests, args.seconds)
    workdir = ROOT / ".run" / "benchmark"
    repository = repository_with_single_step(Path(args.repository), args.model, args.checkpoint, workdir)
    print(f"machine: {measure.machine()}", flush=True)
    layouts = {"ensemble": args.model, "single step": args.model + SINGLE_STEP_SUFFIX, FLOOR: args.model + FLOOR_SUFFIX}
    workers = [int(w) for w in args.workers.split(",")]
    baseline, results = measured(repository, workdir, layouts, audio, budget, args.checkpoint, workers)
    report(baseline, results, [layout for layout in layouts if layout != FLOOR])


if __name__ == "__main__":
    main()
