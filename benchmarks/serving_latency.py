"""Side by side, in one run, the default model's clip classified by
  1. transformers' pipeline("audio-classification") in-process (the competitor),
  2. Triton directly (gRPC asyncio client -> ensemble),
  3. the gateway (HTTP -> gateway -> Triton), with 1 and with 2 worker processes (GATEWAY_WORKERS),
at concurrency 1 and 8. Prints p50 / p99 latency, throughput, and the ratios.

The HTTP client is aiohttp: httpx, as a load generator on the same 2 cores, cost as much CPU as the gateway
itself (c=8: 250-320 req/s through the gateway with httpx, 400-500 with aiohttp).

    .venv/bin/python benchmarks/serving_latency.py [--model keyword-spotter] [--audio samples/yes.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import aiohttp

from benchmarks import measure
from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, Ports, free_port, http_ok
from triton_control import AsyncTritonControl
from triton_steps.audio import load

ROOT = Path(__file__).resolve().parents[1]

CONCURRENCY = (1, 8)


async def http_post(session: aiohttp.ClientSession, url: str, data: bytes) -> None:
    async with session.post(url, data=data) as response:
        await response.read()
        response.raise_for_status()


async def served(
    triton_url: str, gateway_url: str | None, model: str, audio: bytes, budget: tuple[int, float]
) -> dict[str, measure.Result]:
    """Triton direct (when ``gateway_url`` is None) or through the gateway, at each concurrency."""
    results = {}
    async with AsyncTritonControl(triton_url) as grpc, aiohttp.ClientSession() as http:

        async def call() -> None:
            if gateway_url is None:
                await grpc.classify(model, audio)
            else:
                await http_post(http, f"{gateway_url}/models/{model}", audio)

        for concurrency in CONCURRENCY:
            results[f"c{concurrency}"] = result = await measure.under_load(call, concurrency, *budget)
            print(f"  c{concurrency:<3} {result.line()}", flush=True)
    return results


def pipeline_baseline(checkpoint: str, audio: bytes, budget: tuple[int, float]) -> measure.Result:
    from transformers import pipeline

    classifier = pipeline("audio-classification", model=checkpoint, device="cpu")
    waveform = load(audio, classifier.feature_extractor.sampling_rate)  # decode once; the pipeline gets arrays
    result = measure.serial(lambda: classifier(waveform.copy()), *budget)
    print(f"transformers pipeline, in process\n  c1   {result.line()}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repository", default=str(ROOT / "model_repository"))
    parser.add_argument("--model", default="keyword-spotter")
    parser.add_argument("--checkpoint", default=str(ROOT / "keyword_spotter" / "checkpoint"))
    parser.add_argument("--audio", default=str(ROOT / "samples" / "yes.wav"))
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement, at least")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement, at least")
    parser.add_argument("--workers", default="1,2", help="gateway worker counts to compare")
    args = parser.parse_args()
    audio, budget = Path(args.audio).read_bytes(), (args.requests, args.seconds)
    baseline = pipeline_baseline(args.checkpoint, audio, budget)
    workdir = ROOT / ".run" / "benchmark"
    results: dict[str, dict[str, measure.Result]] = {}
    with LocalTriton(Path(args.repository), workdir, Ports(free_port(), free_port(), free_port())) as triton:
        print("Triton direct (gRPC)", flush=True)
        results["triton"] = asyncio.run(served(triton.grpc_url, None, args.model, audio, budget))
        for workers in [int(w) for w in args.workers.split(",")]:
            log = workdir / f"gateway-{workers}.log"
            with GatewayProcess(triton.grpc_url, free_port(), log, workers=str(workers)) as gateway:
                deadline = time.monotonic() + 60
                while not http_ok(f"{gateway.url}/ready"):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"the gateway did not become ready; see {log}")
                    time.sleep(0.2)
                print(f"gateway (HTTP) -> Triton, {workers} worker(s)", flush=True)
                results[f"gateway x{workers}"] = asyncio.run(
                    served(triton.grpc_url, gateway.url, args.model, audio, budget)
                )
    print("ratios:")
    for concurrency in CONCURRENCY:
        direct = results["triton"][f"c{concurrency}"]
        for name, by_concurrency in results.items():
            if name.startswith("gateway"):
                result = by_concurrency[f"c{concurrency}"]
                print(
                    f"  c{concurrency} {name}: p50 {result.p50_ms - direct.p50_ms:+.2f} ms over Triton, "
                    f"throughput {result.clips_per_s / direct.clips_per_s:.0%} of Triton's, "
                    f"{result.clips_per_s / baseline.clips_per_s:.2f}x the pipeline"
                )


if __name__ == "__main__":
    main()
