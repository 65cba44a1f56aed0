"""Side by side, in one run, the default model's clip classified by
  1. transformers' pipeline("audio-classification") in-process (the competitor),
  2. Triton directly (gRPC asyncio client), with the shipped three-step ensemble and with the same checkpoint
     exported ``--single-step`` (one Python step: decode, features, network, scores),
  3. the gateway (HTTP -> gateway -> Triton) in front of each, with 1 and with 2 worker processes
     (GATEWAY_WORKERS),
at concurrency 1 and 8, the two layouts in turn for 3 rounds (each cell the median round), each round of Triton
direct after a round of the pipeline (so that a machine whose speed drifts, as shared ones do, moves both alike).
Prints p50 / p99 latency, throughput, Triton's CPU time per request (the server and its Python stubs), and the
ratios.

The HTTP client is aiohttp: httpx, as a load generator on the same 2 cores, cost as much CPU as the gateway
itself (c=8: 250-320 req/s through the gateway with httpx, 400-500 with aiohttp).

    .venv/bin/python -m benchmarks.serving_latency [--model keyword-spotter] [--audio samples/yes.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import psutil

from benchmarks import measure
from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, Ports, free_port, http_ok
from triton_control import AsyncTritonControl
from triton_steps import contract
from triton_steps.audio import load

ROOT = Path(__file__).resolve().parents[1]

CONCURRENCY = (1, 8)
ROUNDS = 3
SINGLE_STEP_SUFFIX = "-single-step"


async def http_post(session: aiohttp.ClientSession, url: str, data: bytes) -> None:
    async with session.post(url, data=data) as response:
        await response.read()
        response.raise_for_status()


def triton_cpu_s(server: LocalTriton) -> float:
    """CPU seconds used so far by the tritonserver process and its Python stubs."""
    assert server.process is not None
    root = psutil.Process(server.process.pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


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
    ``model`` + SINGLE_STEP_SUFFIX."""
    from export.exporter import ExportOptions, export_model

    both = workdir / "repository"
    shutil.rmtree(both, ignore_errors=True)
    for name in contract.StepNames(model).all():
        shutil.copytree(repository / name, both / name, ignore=shutil.ignore_patterns("__pycache__"))
    export_model(checkpoint, both, ExportOptions(name=model + SINGLE_STEP_SUFFIX, single_step=True))
    return both


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
    pipeline = pipeline_round(args.checkpoint, audio, budget)
    layouts = {"ensemble": args.model, "single step": args.model + SINGLE_STEP_SUFFIX}
    results: dict[str, dict[str, measure.Result]] = {}
    with LocalTriton(repository, workdir, Ports(free_port(), free_port(), free_port())) as triton:
        print("Triton direct (gRPC), each round after a round of the pipeline", flush=True)
        direct = asyncio.run(served(triton, None, layouts, audio, budget, pipeline))
        baseline = direct.pop(PIPELINE)["c1"]
        for layout, by_concurrency in direct.items():
            results[f"triton {layout}"] = by_concurrency
        for workers in [int(w) for w in args.workers.split(",")]:
            log = workdir / f"gateway-{workers}.log"
            with GatewayProcess(triton.grpc_url, free_port(), log, workers=str(workers)) as gateway:
                deadline = time.monotonic() + 60
                while not http_ok(f"{gateway.url}/ready"):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the gateway did not become ready; see {log}")
                    time.sleep(0.2)
                print(f"gateway (HTTP) -> Triton, {workers} worker(s)", flush=True)
                for layout, by_concurrency in asyncio.run(served(triton, gateway.url, layouts, audio, budget)).items():
                    results[f"gateway x{workers} {layout}"] = by_concurrency
    print("ratios:")
    for concurrency in CONCURRENCY:
        key = f"c{concurrency}"
        for layout in layouts:
            direct = results[f"triton {layout}"][key]
            ratio = direct.clips_per_s / baseline.clips_per_s
            print(f"  c{concurrency} Triton direct, {layout}: {ratio:.2f}x the pipeline")
            for name, by_concurrency in results.items():
                if name.startswith("gateway") and name.endswith(layout):
                    result = by_concurrency[key]
                    print(
                        f"  c{concurrency} {name}: p50 {result.p50_ms - direct.p50_ms:+.2f} ms over Triton, "
                        f"throughput {result.clips_per_s / direct.clips_per_s:.0%} of Triton's, "
                        f"{result.clips_per_s / baseline.clips_per_s:.2f}x the pipeline"
                    )


if __name__ == "__main__":
    main()
