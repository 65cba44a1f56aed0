"""Requests that are heavy to decode cannot starve light ones: the decode budget bounds each one's work, and
the gateway's heavy lane lets one at a time into Triton (per worker), leaving the other preprocess instance
to light requests. Measured with the attack that once cost 2.3 s of CPU per 400 kB request, and with two
minutes of Opus in a few tens of kB (0.4 s of CPU each), which the body's size once called light."""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from audio_formats import ffmpeg_encode

from local_triton.tritonserver import LocalTriton

ROOT = Path(__file__).resolve().parents[2]
LIGHT = (ROOT / "samples" / "yes.wav").read_bytes()
HEAVY_CLIENTS = 8
MAX_SLOWDOWN = 3.0  # the light request's p50 beside the heavy ones, over its p50 alone


def _flac_bomb() -> bytes:
    """119 s x 8 channels x 384 kHz of silence: each of rate, channels and length within its own limit."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((384_000 * 119, 8), np.int16), 384_000, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _long_opus() -> bytes:
    """119 s of 48 kHz noise as Opus at 6 kb/s: within every limit, and decoded in full (about 0.4 s of CPU)."""
    noise = ["-f", "lavfi", "-i", "anoisesrc=r=48000:a=0.1:d=119"]
    return ffmpeg_encode("ogg-opus", extra_input=[*noise, "-b:a", "6k"])


# name -> (the heavy body, what it is answered: the status and a part of its body)
HEAVY = {"flac-bomb": (_flac_bomb, 400, "costs more to decode than this model allows"), "opus": (_long_opus, 200, "")}


@pytest.mark.parametrize("kind", HEAVY)
def test_light_requests_stay_fast_beside_eight_heavy_ones(default_served: tuple[LocalTriton, str], kind) -> None:
    _, url = default_served
    make, status, answer_part = HEAVY[kind]
    heavy = make()

    async def scenario() -> tuple[float, float, list[httpx.Response]]:
        async with httpx.AsyncClient(timeout=120) as client:

            async def light_p50(count: int = 30) -> float:
                times = []
                for _ in range(count):
                    started = time.perf_counter()
                    answer = await client.post(f"{url}/", content=LIGHT)
                    assert answer.status_code == 200 and answer.json()[0]["label"] == "yes"
                    times.append(time.perf_counter() - started)
                return statistics.median(times)

            await light_p50(5)  # warm
            alone = await light_p50()
            stop, heavy_answers = asyncio.Event(), []

            async def heavy_client() -> None:
                while not stop.is_set():
                    heavy_answers.append(await client.post(f"{url}/", content=heavy))

            clients = [asyncio.create_task(heavy_client()) for _ in range(HEAVY_CLIENTS)]
            await asyncio.sleep(1)
            beside = await light_p50()
            stop.set()
            await asyncio.gather(*clients)
            return alone, beside, heavy_answers

    alone, beside, heavy_answers = asyncio.run(scenario())
    print(
        f"light p50 alone {alone * 1000:.1f} ms, beside {HEAVY_CLIENTS} heavy {beside * 1000:.1f} ms "
        f"({beside / alone:.2f}x); {len(heavy_answers)} heavy answered"
    )
    assert heavy_answers and all(a.status_code == status for a in heavy_answers)
    assert answer_part in heavy_answers[0].text
    assert beside / alone < MAX_SLOWDOWN
