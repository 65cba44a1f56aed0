"""How many live-audio streams stay real-time (``make bench-streams``), side by side with the same windows
POSTed one HTTP request each.

N simulated microphones, each sending 100 ms chunks of real speech at real-time pace (16 kHz, 16-bit) over
the WebSocket (window 1 s, hop 0.5 s). An event's latency runs from the moment the chunk holding the window's
last sample was sent to the moment its event arrived. N holds if every window's event arrives and the p99
latency is under 500 ms. The competitor: N clients each POSTing the same 1 s windows every 0.5 s, latency
from the moment the window was complete. Both against the default model (as shipped, and exported
``--single-step``), and against a real-size wav2vec2-base (random weights) in fp32 and in int8, each on the
engine ``--engine auto`` chose here (the report names each model's engine and precision), on the stack as
``make serve`` runs it (Triton, the model sync, the gateway), with what each window cost each process in CPU
(Triton and its stubs, the gateway, this client: the 2 cores hold 2,000 ms a second). Writes
``stream_load.json`` and ``stream_load.png`` into ``--results``.

Then fairness: a light POST's p50 alone, and beside 4 streams flooding audio as fast as the gateway reads it
at the smallest hop allowed (each stream is charged for its compute: one window in flight, paced at
``GATEWAY_STREAM_MAX_SPEED``; target: at most 2x the p50 alone).

    .venv/bin/python benchmarks/stream_load.py [--seconds 10] [--models keyword-spotter,wav2vec2-base]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import time
from pathlib import Path

import aiohttp
import numpy as np
import soundfile

from benchmarks import measure, real_size_models, stack
from export.exporter import ExportOptions, export_model
from gateway.errors import CloseCode
from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton
from triton_control import TritonControl
from triton_steps import contract
from triton_steps.metadata import ModelMetadata

ROOT = Path(__file__).resolve().parents[1]

RATE = 16000
CHUNK_S, WINDOW_S, HOP_S = 0.1, 1.0, 0.5
P99_LIMIT_MS = 500.0
SINGLE_STEP = "keyword-spotter-single-step"  # the default model's checkpoint exported --single-step
INT8 = "wav2vec2-base-int8"
STEPS = {
    "keyword-spotter": (50, 100, 125, 150, 175, 200, 250),
    SINGLE_STEP: (100, 150, 200, 250, 275, 300, 350),
    "wav2vec2-base": (2, 4, 6, 8, 12),
    INT8: (4, 6, 8, 12, 16),
}
# model -> (its checkpoint, how it is exported): the shipped keyword spotter's, or a real-size one by name
EXPORTS = {
    SINGLE_STEP: ("keyword-spotter", ExportOptions(name=SINGLE_STEP, single_step=True)),
    "wav2vec2-base": ("wav2vec2-base", ExportOptions(name="wav2vec2-base")),
    INT8: ("wav2vec2-base", ExportOptions(name=INT8, quantize="int8")),
}


def speech(seconds: float) -> np.ndarray:
    """Real clips of the committed validation speakers, back to back, as int16."""
    clips = sorted((ROOT / "tests" / "data" / "speech_commands_validation").glob("*/*.flac"))
    parts = [soundfile.read(clip, dtype="int16")[0] for clip in clips[: int(seconds) + 1]]
    return np.concatenate(parts)[: int(seconds * RATE)]


def _summary(latencies: list[float], expected: int, got: int) -> dict:
    ms = np.array(latencies) * 1000 if latencies else np.array([np.inf])
    p99 = float(np.percentile(ms, 99))
    return {
        "events": got,
        "expected": expected,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": p99,
        "real_time": got == expected and p99 < P99_LIMIT_MS,
    }


async def _one_stream(
    session: aiohttp.ClientSession, url: str, audio: np.ndarray, started: float, latencies: list[float]
) -> int:
    chunk = int(CHUNK_S * RATE)
    sent_at: list[float] = []
    received = 0
    async with session.ws_connect(url, max_msg_size=0) as ws:
        await ws.send_str(json.dumps({"window_s": WINDOW_S, "hop_s": HOP_S}))

        async def reader() -> None:
            nonlocal received
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                event = json.loads(message.data)
                if "error" in event:
                    raise RuntimeError(event["error"])
                last_chunk = int(round(event["end_s"] / CHUNK_S)) - 1
                latencies.append(time.perf_counter() - sent_at[last_chunk])
                received += 1

        reading = asyncio.create_task(reader())
        for index in range(len(audio) // chunk):
            await asyncio.sleep(max(0.0, started + index * CHUNK_S - time.perf_counter()))
            sent_at.append(time.perf_counter())
            await ws.send_bytes(audio[index * chunk : (index + 1) * chunk].tobytes())
        await ws.send_str(json.dumps({"event": "end"}))
        await reading
    return received


async def streams(gateway: str, model: str, n: int, seconds: float) -> dict:
    audio = speech(seconds)
    expected = int((seconds - WINDOW_S) / HOP_S) + 1
    latencies: list[float] = []
    url = gateway.replace("http://", "ws://") + f"/models/{model}/stream"
    started = time.perf_counter() + 0.5
    offsets = np.linspace(0, CHUNK_S, n, endpoint=False)  # microphones do not start in lockstep
    # aiohttp's WebSocket client: about a third of the CPU of the websockets package's for the same load.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        counts = await asyncio.gather(
            *(_one_stream(session, url, audio, started + o, latencies) for o in offsets), return_exceptions=True
        )
    got = sum(c for c in counts if isinstance(c, int))
    return _summary(latencies, expected * n, got)


async def posts(gateway: str, model: str, n: int, seconds: float) -> dict:
    audio = speech(seconds)
    windows = []
    for start in np.arange(0, seconds - WINDOW_S + 1e-9, HOP_S):
        buffer = io.BytesIO()
        begin = int(start * RATE)
        soundfile.write(buffer, audio[begin : begin + int(WINDOW_S * RATE)], RATE, format="WAV", subtype="PCM_16")
        windows.append((start + WINDOW_S, buffer.getvalue()))
    latencies: list[float] = []
    started = time.perf_counter() + 0.5
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(offset: float) -> int:
            done = 0
            for complete_at, data in windows:  # each window is POSTed once it is complete, in real time
                due = started + offset + complete_at
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                async with session.post(f"{gateway}/models/{model}", data=data) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(time.perf_counter() - due)
                        done += 1
            return done

        offsets = np.linspace(0, CHUNK_S, n, endpoint=False)
        counts = await asyncio.gather(*(client(o) for o in offsets), return_exceptions=True)
    return _summary(latencies, len(windows) * n, sum(c for c in counts if isinstance(c, int)))


FLOODERS = 4
FLOOD_HOP_S = 0.05  # the gateway's floor on a stream's hop


async def fairness(gateway: str, model: str, posts: int = 40) -> dict:
    """A light POST's p50 alone, then beside ``FLOODERS`` streams flooding as fast as they may."""
    light = (ROOT / "samples" / "yes.wav").read_bytes()
    flood = np.tile(speech(10), 30).tobytes()  # 300 s of audio, more than the run lasts at 4x real time
    stop = asyncio.Event()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def p50() -> float:
            times, began = [], time.perf_counter()
            for _ in range(posts):
                started = time.perf_counter()
                async with session.post(f"{gateway}/models/{model}", data=light) as response:
                    await response.read()
                    assert response.status == 200, response.status
                times.append(time.perf_counter() - started)
            print(
                f"  {posts} POSTs in {time.perf_counter() - began:.2f} s: p50 {np.median(times) * 1000:.1f} ms, "
                f"p90 {np.percentile(times, 90) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms",
                flush=True,
            )
            return float(np.median(times)) * 1000

        async def flooder() -> tuple[float, int | None]:
            """Floods until stopped, or until the gateway closes the stream (a model too slow for the flood falls
            behind real time, and the gateway ends such a stream with 1013); returns the speed its windows were
            scored at (x real time) and the gateway's close code, if it closed it."""
            url = gateway.replace("http://", "ws://") + f"/models/{model}/stream"
            scored_s = 0.0
            async with session.ws_connect(url, max_msg_size=0) as ws:
                await ws.send_str(json.dumps({"window_s": WINDOW_S, "hop_s": FLOOD_HOP_S}))
                began = time.perf_counter()

                async def reader() -> None:
                    nonlocal scored_s
                    async for message in ws:
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        scored_s = json.loads(message.data).get("end_s", scored_s)

                reading = asyncio.create_task(reader())
                try:
                    for start in range(0, len(flood), 32000):
                        if stop.is_set() or ws.closed:
                            break
                        await ws.send_bytes(flood[start : start + 32000])
                except aiohttp.ClientConnectionResetError:
                    await reading  # the gateway closed the stream: its close frame ends the reader
                reading.cancel()
                return scored_s / (time.perf_counter() - began), ws.close_code

        await p50()  # warm
        alone = await p50()
        flooders = [asyncio.create_task(flooder()) for _ in range(FLOODERS)]
        await asyncio.sleep(2)
        beside = await p50()
        stop.set()
        speeds, closes = zip(*await asyncio.gather(*flooders), strict=True)
    return {
        "alone_p50_ms": alone,
        "beside_p50_ms": beside,
        "ratio": beside / alone,
        "flood_speeds": list(speeds),
        "flood_closed_by_gateway": [code for code in closes if code not in (None, CloseCode.NORMAL)],
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(report["models"]), figsize=(6 * len(report["models"]), 4), squeeze=False)
    for axis, (model, rows) in zip(axes[0], report["models"].items(), strict=True):
        for way, style in (("websocket", "o-"), ("http_post", "s--")):
            points = [(r["streams"], r[way]["p99_ms"]) for r in rows if np.isfinite(r[way]["p99_ms"])]
            if points:
                axis.plot(*zip(*points, strict=True), style, label=way.replace("_", " "))
        axis.axhline(P99_LIMIT_MS, color="grey", linewidth=0.8)
        served = report["served_as"][model]
        title = f"{model} ({served['precision']}, {served['engine']})"
        axis.set(title=title, xlabel="concurrent real-time streams", ylabel="p99 event latency (ms)", yscale="log")
        axis.legend()
    figure.suptitle(report["machine"])
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def scaling(report: dict, triton: LocalTriton, gateway: GatewayProcess, model: str, seconds: float) -> None:
    """More and more real-time streams until neither way holds, into ``report``."""
    rows = report["models"][model] = []
    assert triton.process is not None and gateway.process is not None
    # (pid, with its children): the client is this process, whose children are the server and the gateway
    processes = {
        "triton": (triton.process.pid, True),
        "gateway": (gateway.process.pid, True),
        "client": (os.getpid(), False),
    }
    for n in STEPS[model]:
        row = {"streams": n}
        for way, run in (("websocket", streams), ("http_post", posts)):
            before = {name: measure.cpu_s(*process) for name, process in processes.items()}
            row[way] = result = asyncio.run(run(gateway.url, model, n, seconds))
            # what each window cost each process, in CPU: 2 cores hold 2,000 ms of it a second
            result["cpu_ms_per_window"] = {
                name: round((measure.cpu_s(*process) - before[name]) * 1000 / max(1, result["events"]), 2)
                for name, process in processes.items()
            }
            cpu = ", ".join(f"{name} {ms:.2f}" for name, ms in result["cpu_ms_per_window"].items())
            print(
                f"{model:16} {n:4} streams  {way:9}  events {result['events']:5}/{result['expected']:<5}"
                f"  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms"
                f"  {'real-time' if result['real_time'] else 'NOT real-time'}  CPU ms/window: {cpu}",
                flush=True,
            )
        rows.append(row)
        if not row["websocket"]["real_time"] and not row["http_post"]["real_time"]:
            break
    for way in ("websocket", "http_post"):
        held = [r["streams"] for r in rows if r[way]["real_time"]]
        report.setdefault("most_real_time_streams", {})[f"{model} {way}"] = max(held, default=0)
    # Windows of concurrent streams are batched by Triton: clips per execution of the network step (a
    # single-step model's own executions, whose same-length requests run the network as one batch).
    network = model if model == SINGLE_STEP else contract.StepNames(model).network
    with TritonControl(triton.grpc_url) as control:
        step = control.statistics(network)[network]
    report.setdefault("network_clips_per_execution", {})[model] = round(step.inferences / max(1, step.executions), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(STEPS))
    parser.add_argument("--fairness-only", action="store_true", help="only the light POST beside flooding streams")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each simulated stream")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run" / "bench-streams")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    repository = args.workdir / "model_repository"
    shutil.copytree(ROOT / "model_repository", repository, dirs_exist_ok=True)
    models = args.models.split(",")
    for model in models:
        if model in EXPORTS and not (repository / model / contract.CONFIG_FILE).exists():
            source, options = EXPORTS[model]
            print(f"exporting {model} ...", flush=True)
            if source == "keyword-spotter":
                checkpoint = ROOT / "keyword_spotter" / "checkpoint"
            else:  # random weights, the real size
                checkpoint = real_size_models.build(source, args.workdir / "checkpoints" / source)
            export_model(str(checkpoint), repository, options)
    machine = measure.machine()
    report: dict = {"machine": machine, "p99_limit_ms": P99_LIMIT_MS, "models": {}, "served_as": {}}
    for model in models:
        metadata = ModelMetadata.from_json((repository / model / contract.METADATA_FILE).read_text())
        report["served_as"][model] = {"engine": metadata.engine, "precision": metadata.precision}
    with stack.served(repository, args.workdir / "serve", max_streams="1000") as (triton, gateway):
        for model in models:
            if not args.fairness_only:
                scaling(report, triton, gateway, model, args.seconds)
        for model in models:
            result = report.setdefault("fairness", {})[model] = asyncio.run(fairness(gateway.url, model))
            print(
                f"{model:16} light POST p50 alone {result['alone_p50_ms']:.1f} ms, beside {FLOODERS} flooding streams "
                f"{result['beside_p50_ms']:.1f} ms: {result['ratio']:.2f}x (target <= 2x); the streams were scored at "
                f"{', '.join(f'{speed:.1f}' for speed in result['flood_speeds'])}x real time"
                + (
                    f"; closed by the gateway: {result['flood_closed_by_gateway']}"
                    if result["flood_closed_by_gateway"]
                    else ""
                ),
                flush=True,
            )
    summary = ("served_as", "most_real_time_streams", "network_clips_per_execution", "fairness")
    print(json.dumps({k: report[k] for k in summary if k in report}, indent=2))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "stream_load.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.fairness_only:
        plot(report, args.results / "stream_load.png")
    print(f"wrote {args.results / 'stream_load.json'} and stream_load.png")


if __name__ == "__main__":
    main()
