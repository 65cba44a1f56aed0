"""Live audio over the WebSocket, against a real gateway and tritonserver serving the default model: every
window's event equals POSTing that window's samples as a 16-bit WAV, spoken words are recognised in their
windows, any rate and encoding and any cut of the bytes work, and every misuse gets a clear close code
with nothing left open."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import soundfile
import soxr
from helpers import assert_same, pids_mentioning, running_gateway, wait_until
from test_readme import readme_blocks
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway.streaming import to_pcm16
from local_triton.tritonserver import LocalTriton

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT / "tests" / "data" / "speech_commands_validation"
WORDS = ["yes", "no", "up"]  # one real clip each, 1 s at 16 kHz, back to back
RATE = 16000


@pytest.fixture(scope="module")
def triton(default_served: tuple[LocalTriton, str]) -> LocalTriton:
    return default_served[0]


@pytest.fixture(scope="module")
def gateway(default_served: tuple[LocalTriton, str]) -> str:
    return default_served[1]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Three real spoken words (validation speakers), 1 s each, as int16."""
    parts = []
    for word in WORDS:
        clip, rate = soundfile.read(sorted((CLIPS / word).glob("*.flac"))[0], dtype="int16")
        assert rate == RATE and len(clip) == RATE
        parts.append(clip)
    return np.concatenate(parts)


def ws_url(http_url: str, path: str = "/stream") -> str:
    return http_url.replace("http://", "ws://") + path


def run_stream(url: str, config: dict, data: bytes, chunk: int, headers: dict | None = None) -> tuple[list, int]:
    """Send ``config``, then ``data`` in messages of ``chunk`` bytes, then the end; the events and close code."""
    events = []
    with connect(url, additional_headers=headers or {}, max_size=None) as ws:
        ws.send(json.dumps(config))
        for start in range(0, len(data), chunk):
            ws.send(data[start : start + chunk])
        ws.send(json.dumps({"event": "end"}))
        try:
            while True:
                events.append(json.loads(ws.recv(timeout=60)))
        except ConnectionClosed as closed:
            return events, closed.rcvd.code if closed.rcvd else None


def posted(gateway: str, samples_int16: np.ndarray, parameters: str = "") -> list[dict]:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples_int16, RATE, format="WAV", subtype="PCM_16")
    answer = httpx.post(f"{gateway}/models/keyword-spotter{parameters}", content=buffer.getvalue(), timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_spoken_words_one_event_per_hop_each_equal_to_posting_its_window(gateway: str, speech: np.ndarray) -> None:
    config = {"sampling_rate": RATE, "encoding": "pcm_s16le", "window_s": 1.0, "hop_s": 0.5}
    events, code = run_stream(ws_url(gateway), config, speech.astype("<i2").tobytes(), chunk=3200)  # 100 ms
    assert code == 1000
    assert [(e["start_s"], e["end_s"]) for e in events] == [(s, s + 1.0) for s in (0.0, 0.5, 1.0, 1.5, 2.0)]
    for event in events:
        start = round(event["start_s"] * RATE)
        assert_same(event["predictions"], posted(gateway, speech[start : start + RATE]))
    for word, event in zip(WORDS, events[::2], strict=True):  # the windows that hold one word each
        assert event["predictions"][0]["label"] == word


def test_defaults_and_parameters(gateway: str, speech: np.ndarray) -> None:
    """No window: the model's own (1 s for the keyword spotter), hop half of it; parameters as in a POST."""
    config = {"parameters": {"top_k": 2, "function_to_apply": "sigmoid"}}
    events, code = run_stream(ws_url(gateway, "/models/keyword-spotter/stream"), config, speech.tobytes(), 32000)
    assert code == 1000 and len(events) == 5 and events[1]["start_s"] == 0.5
    assert all(len(e["predictions"]) == 2 for e in events)
    reference = posted(gateway, speech[RATE : 2 * RATE], "?top_k=2&function_to_apply=sigmoid")
    assert_same(events[2]["predictions"], reference)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
@pytest.mark.parametrize("encoding", ["pcm_f32le", "pcm_s16le"])
def test_any_rate_and_encoding_is_resampled_as_one_piece(
    gateway: str, speech: np.ndarray, rate: int, encoding: str
) -> None:
    source = soxr.resample(speech.astype(np.float32) / 32768, RATE, rate, quality="VHQ")
    if encoding == "pcm_s16le":
        sent, source = to_pcm16(source).astype("<i2"), to_pcm16(source).astype(np.float32) / 32768
    else:
        sent = source.astype("<f4")
    config = {"sampling_rate": rate, "encoding": encoding, "window_s": 1.0, "hop_s": 1.0}
    events, code = run_stream(ws_url(gateway), config, sent.tobytes(), chunk=4 * rate // 10 + 1)  # odd cuts
    assert code == 1000
    at_model_rate = to_pcm16(soxr.resample(source, rate, RATE, quality="VHQ"))  # the whole stream at once
    assert len(events) == 3
    for event, word in zip(events, WORDS, strict=True):
        start = round(event["start_s"] * RATE)
        assert_same(event["predictions"], posted(gateway, at_model_rate[start : start + RATE]))
        if rate > RATE:  # 8 kHz keeps only the telephone band: its words are not all recognised, as a POST's
            assert event["predictions"][0]["label"] == word


@pytest.mark.parametrize("chunk", [1, 333, 10 * RATE * 2])
def test_any_message_size(gateway: str, speech: np.ndarray, chunk: int) -> None:
    """One-byte messages (32,000 of them: one window), odd sizes that split samples, and 10 s messages."""
    clip = {1: speech[:RATE], 333: speech, chunk: np.tile(speech, 7)[: 20 * RATE]}[chunk]
    config = {"window_s": 1.0, "hop_s": 0.5}
    events, code = run_stream(ws_url(gateway), config, clip.tobytes(), chunk)
    assert code == 1000
    assert [e["start_s"] for e in events] == [i * 0.5 for i in range(int(len(clip) / RATE * 2) - 1)]
    for event in events[:: max(1, len(events) // 4)]:
        start = round(event["start_s"] * RATE)
        assert_same(event["predictions"], posted(gateway, clip[start : start + RATE]))


def test_the_last_partial_window_is_scored_at_the_end(gateway: str, speech: np.ndarray) -> None:
    clip = speech[: int(2.3 * RATE)]
    events, code = run_stream(ws_url(gateway), {"window_s": 1.0, "hop_s": 1.0}, clip.tobytes(), 3200)
    assert code == 1000
    assert [(e["start_s"], e["end_s"]) for e in events] == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.3)]
    assert_same(events[-1]["predictions"], posted(gateway, clip[2 * RATE :]))
    short = speech[: int(1.05 * RATE)]  # 50 ms past the window: under the 0.1 s minimum, not scored
    events, _ = run_stream(ws_url(gateway), {"window_s": 1.0, "hop_s": 1.0}, short.tobytes(), 3200)
    assert [e["start_s"] for e in events] == [0.0]


def _streams_open(gateway: str) -> float:
    text = httpx.get(f"{gateway}/metrics").text
    return float(re.search(r"^gateway_streams (\S+)$", text, re.M)[1])


def _refusal(url: str, first: str | bytes, headers: dict | None = None) -> tuple[str, int]:
    """The error message and close code a stream gets after sending ``first`` (which a refusal may precede)."""
    with contextlib.suppress(ConnectionClosed), connect(url, additional_headers=headers or {}, max_size=None) as ws:
        with contextlib.suppress(ConnectionClosed):
            ws.send(first)
        message = json.loads(ws.recv(timeout=30))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    return message["error"], closed.value.rcvd.code


@pytest.mark.parametrize(
    ("first", "code", "message"),
    [
        ("not json", 1008, "bad configuration"),
        (json.dumps({"encoding": "mp3"}), 1008, "encoding"),
        (json.dumps({"sampling_rate": 1_000_000}), 1008, "sampling_rate"),
        (json.dumps({"window_s": 1.0, "hop_s": 2.0}), 1008, "hop_s"),
        (json.dumps({"temperature": 1}), 1008, "temperature"),
        (b"\x00\x01", 1008, "first message must be the JSON configuration"),
    ],
)
def test_bad_configurations_are_closed_with_1008_and_say_why(gateway: str, first, code: int, message: str) -> None:
    error, closed = _refusal(ws_url(gateway), first)
    assert closed == code and message in error, error


def test_unknown_model_and_bad_messages(gateway: str) -> None:
    error, code = _refusal(ws_url(gateway, "/models/nobody/stream"), json.dumps({}))
    assert code == 1008 and "not served" in error
    with connect(ws_url(gateway)) as ws:
        ws.send(json.dumps({}))
        ws.send(json.dumps({"event": "pause"}))
        assert "event" in json.loads(ws.recv(timeout=30))["error"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd.code == 1008


def test_limits_token_and_a_client_that_vanishes(triton: LocalTriton, speech: np.ndarray) -> None:
    settings = {"api_token": "s3cret", "max_streams": "1", "stream_max_message_bytes": "100000", "stream_idle_s": "1"}
    with running_gateway(triton.grpc_url, **settings) as gateway:
        auth = {"Authorization": "Bearer s3cret"}
        error, code = _refusal(ws_url(gateway), json.dumps({}))
        assert code == 1008 and "API token" in error
        error, code = _refusal(ws_url(gateway), json.dumps({"token": "wrong"}))
        assert code == 1008 and "API token" in error
        events, code = run_stream(ws_url(gateway), {"token": "s3cret"}, speech.tobytes(), 32000)  # browsers
        assert code == 1000 and len(events) == 5
        with connect(ws_url(gateway), additional_headers=auth) as first:
            first.send(json.dumps({}))
            wait_until(lambda: _streams_open_with(gateway, auth) == 1)  # its slot is taken with its configuration
            error, code = _refusal(ws_url(gateway), json.dumps({}), auth)  # the only slot is taken
            assert code == 1013 and "limit of 1 streams" in error
        time.sleep(0.5)
        with connect(ws_url(gateway), additional_headers=auth, max_size=None) as ws:
            ws.send(json.dumps({}))
            ws.send(bytes(100_002))
            assert "limit is 100000" in json.loads(ws.recv(timeout=30))["error"]
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1009
        with connect(ws_url(gateway), additional_headers=auth) as ws:  # silent after the configuration
            ws.send(json.dumps({}))
            assert "nothing received for 1 s" in json.loads(ws.recv(timeout=30))["error"]
        # A client that vanishes mid-stream (its socket closed, no close frame): the slot comes back.
        with contextlib.suppress(ConnectionClosed), connect(ws_url(gateway), additional_headers=auth) as ws:
            ws.send(json.dumps({}))
            ws.send(speech[: RATE // 2].tobytes())
            ws.socket.shutdown(socket.SHUT_RDWR)
            ws.socket.close()
        deadline = time.monotonic() + 10
        while _streams_open_with(gateway, auth) != 0:
            assert time.monotonic() < deadline, "the vanished stream was never freed"
            time.sleep(0.1)
        events, code = run_stream(ws_url(gateway), {}, speech.tobytes(), 32000, auth)
        assert code == 1000 and len(events) == 5


def _streams_open_with(gateway: str, headers: dict) -> float:
    text = httpx.get(f"{gateway}/metrics", headers=headers).text
    return float(re.search(r"^gateway_streams (\S+)$", text, re.M)[1])


def test_a_client_flooding_faster_than_real_time_is_slowed_not_buffered(gateway: str, speech: np.ndarray) -> None:
    """60 s of audio sent as fast as the socket takes it: every window is answered, in order; the stream is
    read no faster than it is scored, so the gateway holds a window and a message, not the flood."""
    flood = np.tile(speech, 20)
    started = time.monotonic()
    events, code = run_stream(ws_url(gateway), {"window_s": 1.0, "hop_s": 0.5}, flood.tobytes(), 3200)
    assert code == 1000
    assert [e["start_s"] for e in events] == [i * 0.5 for i in range(119)]
    print(f"60 s of audio flooded in: 119 windows answered in {time.monotonic() - started:.1f} s")
    assert _streams_open(gateway) == 0


def test_readme_stream_client(gateway: str) -> None:
    (code,) = [code for tag, code in readme_blocks() if tag == "stream"]
    code = code.replace("ws://127.0.0.1:8080", ws_url(gateway, ""))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0] == "0.0 yes" and len([line for line in lines if line]) == 2  # windows at 0 s and 0.5 s


STREAM_MEMORY_MB = 6  # the README's bound per flooding stream (measured 2.5-3.5 MB at 1, 8 and 48 kHz)


def test_flooding_streams_hold_bounded_memory_and_give_it_back(triton: LocalTriton) -> None:
    """8 clients flood 2 MiB of 8 kHz PCM each in 1 MiB messages as fast as the gateway reads (no speed limit
    here, to load memory most): the gateway's peak stays within the stated bound per stream, and a second
    round leaves it where the first did (memory returned, nothing kept per stream)."""
    streams, message = 8, np.random.default_rng(0).integers(-3000, 3000, 512 * 1024).astype("<i2").tobytes()
    with running_gateway(triton.grpc_url, stream_max_speed="1000", stream_max_lag_s="1000") as gateway:
        process = _gateway_process(gateway)
        base = _flood_round(gateway, process, streams, message)[1]  # warm: imports, buffers, first allocations
        peak, after = _flood_round(gateway, process, streams, message)
    print(f"{streams} flooding streams: peak +{peak - base:.1f} MB over {base:.0f} MB, after {after:.0f} MB")
    assert peak - base <= streams * STREAM_MEMORY_MB
    assert after <= base + 5  # given back: a second round keeps nothing


def _gateway_process(gateway: str) -> psutil.Process:
    port = gateway.rsplit(":", 1)[1]
    (pid,) = [p for p in pids_mentioning("-m\0gateway") if psutil.Process(p).environ().get("GATEWAY_PORT") == port]
    return psutil.Process(pid)


def _flood_round(gateway: str, process: psutil.Process, streams: int, message: bytes) -> tuple[float, float]:
    """The gateway's peak RSS (MB) while ``streams`` flood two ``message`` each, and its RSS once they closed."""
    peak, done, closes = [0.0], threading.Event(), []

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss / 2**20)
            time.sleep(0.01)

    def flood() -> None:
        events, code = run_stream(ws_url(gateway), {"sampling_rate": 8000, "hop_s": 0.5}, message * 2, len(message))
        closes.append((code, len(events)))

    sampler = threading.Thread(target=sample)
    sampler.start()
    clients = [threading.Thread(target=flood) for _ in range(streams)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    time.sleep(2)  # the last windows' answers, sent; then what stays
    done.set()
    sampler.join()
    assert closes == [(1000, 262)] * streams  # 131 s of audio each: every window answered, then a normal close
    return peak[0], process.memory_info().rss / 2**20
