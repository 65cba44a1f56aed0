"""Side by side, in one run: the same clip classified by
  1. transformers' pipeline("audio-classification") in-process (the competitor),
  2. Triton directly (gRPC asyncio client -> ensemble),
  3. the gateway (HTTP -> gateway -> Triton),
at concurrency 1 and 8. Prints p50 / p90 latency, throughput, and the ratios.

    .venv/bin/python benchmarks/serving_latency.py [--model keyword-spotter] [--audio samples/yes.wav]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import tritonclient.grpc.aio as grpcaio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.triton import ensemble_inputs  # noqa: E402
from local_triton.gateway_process import GatewayProcess  # noqa: E402
from local_triton.server import LocalTriton, Ports, free_port, http_ok  # noqa: E402
from triton_steps.audio import load  # noqa: E402


async def measure(call, concurrency: int, requests: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue = list(range(requests))

    async def worker() -> None:
        while queue:
            queue.pop()
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    for _ in range(max(4, concurrency)):  # warm-up
        await call()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, requests / (time.perf_counter() - start)


def summary(name: str, latencies: list[float], throughput: float) -> dict[str, float]:
    p50 = statistics.median(latencies) * 1000
    p90 = float(np.percentile(latencies, 90)) * 1000
    print(f"  {name:<28} p50 {p50:7.2f} ms   p90 {p90:7.2f} ms   {throughput:7.1f} req/s")
    return {"p50": p50, "throughput": throughput}


async def served(triton: LocalTriton, gateway: str, model: str, audio: bytes, requests: int) -> dict:
    results = {}
    async with grpcaio.InferenceServerClient(triton.grpc_url) as grpc, httpx.AsyncClient(timeout=60) as http:

        async def direct() -> None:
            await grpc.infer(model, ensemble_inputs(audio))

        async def through_gateway() -> None:
            (await http.post(f"{gateway}/models/{model}", content=audio)).raise_for_status()

        for concurrency in (1, 8):
            print(f"concurrency {concurrency}:")
            results[("triton", concurrency)] = summary(
                "Triton direct (gRPC)", *await measure(direct, concurrency, requests)
            )
            results[("gateway", concurrency)] = summary(
                "gateway (HTTP) -> Triton", *await measure(through_gateway, concurrency, requests)
            )
            overhead = results[("gateway", concurrency)]["p50"] - results[("triton", concurrency)]["p50"]
            print(f"  gateway overhead at p50: {overhead:+.2f} ms")
    return results


def pipeline_baseline(checkpoint: str, audio: bytes, requests: int) -> dict:
    from transformers import pipeline

    classifier = pipeline("audio-classification", model=checkpoint, device="cpu")
    waveform = load(audio, classifier.feature_extractor.sampling_rate)  # decode once; the pipeline gets arrays
    for _ in range(3):
        classifier(waveform)
    latencies = []
    start = time.perf_counter()
    for _ in range(requests):
        t = time.perf_counter()
        classifier(waveform)
        latencies.append(time.perf_counter() - t)
    print("in-process, one at a time:")
    return summary("transformers pipeline", latencies, requests / (time.perf_counter() - start))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repository", default=str(ROOT / "model_repository"))
    parser.add_argument("--model", default="keyword-spotter")
    parser.add_argument("--checkpoint", default=str(ROOT / "keyword_spotter" / "checkpoint"))
    parser.add_argument("--audio", default=str(ROOT / "samples" / "yes.wav"))
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    audio = Path(args.audio).read_bytes()
    baseline = pipeline_baseline(args.checkpoint, audio, args.requests)
    workdir = ROOT / ".run" / "benchmark"
    with (
        LocalTriton(Path(args.repository), workdir, Ports(free_port(), free_port(), free_port())) as triton,
        GatewayProcess(triton.grpc_url, free_port(), workdir / "gateway.log") as gateway,
    ):
        deadline = time.monotonic() + 60
        while not http_ok(f"{gateway.url}/ready"):
            if not gateway.running() or time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not become ready; see {workdir / 'gateway.log'}")
            time.sleep(0.2)
        results = asyncio.run(served(triton, gateway.url, args.model, audio, args.requests))
    print("ratios:")
    for concurrency in (1, 8):
        gateway_result = results[("gateway", concurrency)]
        print(
            f"  concurrency {concurrency}: gateway/Triton p50 "
            f"{gateway_result['p50'] / results[('triton', concurrency)]['p50']:.2f}x; "
            f"served throughput / pipeline throughput {gateway_result['throughput'] / baseline['throughput']:.2f}x"
        )


if __name__ == "__main__":
    main()
