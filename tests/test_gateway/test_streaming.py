"""Live streams in process: PCM decoding, windowing and the window's WAV as pure functions, then the protocol
through the app in front of a stand-in Triton (configuration, windows, the end, errors and close codes)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from fake_triton import FakeTriton, gateway_app, metadata, settings
from helpers import wait_until
from pydantic import SecretStr
from starlette.websockets import WebSocketDisconnect, WebSocketState

from gateway import decode_cost
from gateway.errors import BadRequest, CloseCode
from gateway.streaming import (
    Pace,
    PcmDecoder,
    Stream,
    StreamConfig,
    Windower,
    _close_with,
    to_pcm16,
    wav16,
    window_and_hop,
)
from triton_control import TritonError

KWS = metadata("kws", "org/kws")  # 16 kHz, window 1 s, min_samples 400


def _tone(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


# --- PCM decoding -----------------------------------------------------------------------------------------


def test_s16_pcm_decodes_to_floats_in_libsndfiles_scale() -> None:
    pcm = np.array([0, 16384, -32768, 32767], "<i2").tobytes()
    samples = PcmDecoder("pcm_s16le").decode(pcm)
    assert samples.dtype == np.float32 and samples.tolist() == [0.0, 0.5, -1.0, 32767 / 32768]


@pytest.mark.parametrize("encoding", ["pcm_s16le", "pcm_f32le"])
def test_messages_cut_mid_sample_decode_as_one(encoding: str) -> None:
    samples = _tone(0.01)
    data = to_pcm16(samples).astype("<i2").tobytes() if encoding == "pcm_s16le" else samples.astype("<f4").tobytes()
    decoder = PcmDecoder(encoding)
    pieces = [decoder.decode(data[i : i + 7]) for i in range(0, len(data), 7)]
    assert np.array_equal(np.concatenate(pieces), PcmDecoder(encoding).decode(data))


def test_f32_pcm_with_nan_is_refused() -> None:
    with pytest.raises(BadRequest, match="NaN"):
        PcmDecoder("pcm_f32le").decode(np.array([0.1, np.nan], "<f4").tobytes())


def test_pcm16_rounds_and_clips() -> None:
    assert to_pcm16(np.array([1.5, -1.5, 0.25, 1 / 65536], np.float32)).tolist() == [32767, -32768, 8192, 0]


def test_a_windows_wav_holds_its_samples_as_16_bit_pcm() -> None:
    samples = _tone(0.5)
    decoded, rate = soundfile.read(io.BytesIO(wav16(samples, 16000)), dtype="float32")
    assert rate == 16000 and np.array_equal(decoded, to_pcm16(samples) / np.float32(32768))


# --- windowing --------------------------------------------------------------------------------------------


def test_windows_come_every_hop_whatever_the_message_sizes() -> None:
    signal = np.arange(100, dtype=np.float32)
    windower = Windower(window=40, hop=20)
    windows = [w for chunk in np.array_split(signal, 7) for w in windower.push(chunk)]
    assert [start for start, _ in windows] == [0, 20, 40, 60]
    assert all(np.array_equal(w, signal[s : s + 40]) for s, w in windows)


def test_the_windower_holds_only_what_the_next_window_needs() -> None:
    windower = Windower(window=40, hop=20)
    list(windower.push(np.zeros(1000, np.float32)))
    assert len(windower._buffer) < 40


def test_the_final_partial_window_is_scored_if_long_enough() -> None:
    windower = Windower(window=40, hop=40)
    list(windower.push(np.arange(50, dtype=np.float32)))
    start, tail = windower.final(min_samples=5)  # type: ignore[misc]
    assert start == 40 and tail.tolist() == list(range(40, 50))
    assert Windower(window=40, hop=40).final(5) is None  # nothing arrived
    short = Windower(window=40, hop=40)
    list(short.push(np.zeros(43, np.float32)))
    assert short.final(min_samples=5) is None  # 3 samples left: too short


def test_no_final_window_when_every_sample_was_covered() -> None:
    windower = Windower(window=40, hop=20)
    list(windower.push(np.zeros(60, np.float32)))  # windows 0-40, 20-60
    assert windower.final(min_samples=1) is None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, (16000, 8000)),  # the model's window, half of it as hop
        ({"window_s": 0.5}, (8000, 4000)),
        ({"window_s": 2.0, "hop_s": 0.25}, (32000, 4000)),
    ],
)
def test_window_and_hop_defaults(config: dict, expected: tuple[int, int]) -> None:
    assert window_and_hop(StreamConfig(**config), KWS) == expected


@pytest.mark.parametrize(
    ("config", "model", "says"),
    [
        ({"window_s": 0.5, "hop_s": 1.0}, KWS, "must not exceed"),
        ({"window_s": 0.01}, KWS, "at least"),
        ({}, metadata("ast", window_seconds=None), "records no window"),
    ],
)
def test_windows_that_cannot_work_are_refused(config: dict, model: object, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        window_and_hop(StreamConfig(**config), model)  # type: ignore[arg-type]


# --- the protocol through the app -------------------------------------------------------------------------


def _stream(client: object, messages: list[object], path: str = "/stream", **kwargs: object) -> list[dict]:
    """Send ``messages`` (dicts as JSON text, bytes as binary) and return every event until the close."""
    events = []
    with client.websocket_connect(path, **kwargs) as ws:  # type: ignore[attr-defined]
        for message in messages:
            if isinstance(message, bytes):
                ws.send_bytes(message)
            else:
                ws.send_text(json.dumps(message))
        while True:
            message = ws.receive()
            if message["type"] == "websocket.close":
                events.append({"close": message["code"]})
                return events
            events.append(json.loads(message["text"]))


def test_a_stream_gets_one_classification_per_window_then_a_normal_close() -> None:
    triton = FakeTriton.serving(KWS)
    audio = to_pcm16(_tone(2.0)).astype("<i2").tobytes()
    with gateway_app(triton) as client:
        events = _stream(client, [{"sampling_rate": 16000}, audio[:10000], audio[10000:], {"event": "end"}])
        metrics = client.get("/metrics").text
    windows = events[:-1]
    assert [(e["start_s"], e["end_s"]) for e in windows] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
    assert windows[0]["predictions"][0] == {"label": "yes", "score": 0.4} and events[-1] == {"close": 1000}
    assert len(triton.calls) == 3 and triton.calls[0].audio == wav16(to_pcm16(_tone(1.0)) / np.float32(32768), 16000)
    assert 'gateway_stream_windows_total{model="org/kws"} 3.0' in metrics
    assert "gateway_streams 0.0" in metrics and "gateway_in_flight 0.0" in metrics


def test_a_streams_windows_are_not_read_again_to_judge_their_decoding_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A window is the gateway's own WAV, mono at the model's rate: its cost is known without its header."""

    def read_again(audio: bytes) -> bool:
        raise AssertionError("a window's header was read")

    monkeypatch.setattr(decode_cost, "is_heavy", read_again)
    triton = FakeTriton.serving(KWS)
    audio = to_pcm16(_tone(1.0)).astype("<i2").tobytes()
    with gateway_app(triton) as client:
        events = _stream(client, [{"sampling_rate": 16000}, audio, {"event": "end"}])
    assert events[0]["end_s"] == 1.0 and events[-1] == {"close": 1000}


def test_a_stream_at_another_rate_is_resampled_to_the_models() -> None:
    triton = FakeTriton.serving(KWS)
    audio = to_pcm16(_tone(1.0, 8000)).astype("<i2").tobytes()
    with gateway_app(triton) as client:
        events = _stream(client, [{"sampling_rate": 8000, "hop_s": 1.0}, audio, {"event": "end"}])
    assert events[0]["end_s"] == 1.0 and events[-1] == {"close": 1000}
    decoded, rate = soundfile.read(io.BytesIO(triton.calls[0].audio))
    assert rate == 16000 and len(decoded) == 16000


def test_the_streams_parameters_reach_triton() -> None:
    triton = FakeTriton.serving(KWS)
    config = {"window_s": 0.5, "parameters": {"top_k": 1, "function_to_apply": "sigmoid"}}
    with gateway_app(triton) as client:
        events = _stream(client, [config, np.zeros(8000, "<i2").tobytes(), {"event": "end"}])
    assert len(events[0]["predictions"]) == 1 and (triton.calls[0].top_k, triton.calls[0].function) == (1, "sigmoid")


@pytest.mark.parametrize(
    ("first", "says"),
    [
        (b"\x00\x00", "must be the JSON configuration"),
        ({"sampling_rate": 10}, "bad configuration"),
        ({"encoding": "mp3"}, "bad configuration"),
        ({"window_s": 0.5, "hop_s": 0.9}, "must not exceed"),
        ({"unknown": 1}, "bad configuration"),
    ],
)
def test_a_bad_configuration_closes_with_policy(first: object, says: str) -> None:
    with gateway_app(FakeTriton.serving(KWS)) as client:
        events = _stream(client, [first])
    assert says in events[0]["error"] and events[-1] == {"close": 1008}


def test_a_text_message_other_than_end_closes_with_policy() -> None:
    with gateway_app(FakeTriton.serving(KWS)) as client:
        events = _stream(client, [{}, {"event": "pause"}])
    assert "event" in events[0]["error"] and events[-1] == {"close": 1008}


def test_an_unknown_model_closes_with_policy() -> None:
    with gateway_app(FakeTriton.serving(KWS)) as client:
        events = _stream(client, [{}], path="/models/nope/stream")
    assert "not served" in events[0]["error"] and events[-1] == {"close": 1008}


def test_a_message_over_the_limit_closes_with_too_big() -> None:
    with gateway_app(FakeTriton.serving(KWS), stream_max_message_bytes=1000) as client:
        events = _stream(client, [{}, b"\x00" * 1002])
    assert "limit is 1000" in events[0]["error"] and events[-1] == {"close": 1009}


@pytest.mark.parametrize(
    ("header", "token", "allowed"),
    [(None, None, False), ("Bearer t0k", None, True), (None, "t0k", True), (None, "wrong", False)],
)
def test_a_stream_needs_the_token_once_one_is_set(header: str | None, token: str | None, allowed: bool) -> None:
    headers = {"Authorization": header} if header else {}
    config = {"token": token} if token else {}
    with gateway_app(FakeTriton.serving(KWS), api_token=SecretStr("t0k")) as client:
        events = _stream(client, [config, {"event": "end"}], headers=headers)
    assert events[-1] == {"close": 1000 if allowed else 1008}


def test_streams_beyond_the_cap_close_with_try_again() -> None:
    with gateway_app(FakeTriton.serving(KWS), max_streams=0) as client:
        events = _stream(client, [{}])
    assert "limit of 0 streams" in events[0]["error"] and events[-1] == {"close": 1013}


def test_a_window_at_the_request_cap_waits_for_a_slot_instead_of_ending_the_stream() -> None:
    """A POST holds the only classification slot: the stream's window waits in line and is scored once the POST
    is done (a POST arriving meanwhile is refused, as at any cap); the stream is not closed."""
    triton = FakeTriton.serving(KWS)
    audio = to_pcm16(_tone(1.0)).astype("<i2").tobytes()
    with gateway_app(triton, max_concurrent_requests=1) as client:
        triton.gate = client.portal.call(asyncio.Event)
        post = threading.Thread(target=client.post, args=("/",), kwargs={"content": wav16(_tone(1.0), 16000)})
        post.start()
        wait_until(lambda: len(triton.calls) == 1)
        stream: list[list[dict]] = []
        streaming = threading.Thread(target=lambda: stream.append(_stream(client, [{}, audio, {"event": "end"}])))
        streaming.start()
        time.sleep(0.3)  # the window is in line, not at Triton
        calls_while_waiting = len(triton.calls)
        refused = client.post("/", content=wav16(_tone(1.0), 16000))
        client.portal.call(triton.gate.set)
        post.join()
        streaming.join(10)
    assert calls_while_waiting == 1 and refused.status_code == 503
    assert [e["start_s"] for e in stream[0][:-1]] == [0.0] and stream[0][-1] == {"close": 1000}


def test_a_window_that_waits_past_the_streams_lag_closes_it_with_try_again() -> None:
    triton = FakeTriton.serving(KWS)
    with gateway_app(triton, max_concurrent_requests=1, stream_max_lag_s=0.2) as client:
        triton.gate = client.portal.call(asyncio.Event)
        post = threading.Thread(target=client.post, args=("/",), kwargs={"content": wav16(_tone(1.0), 16000)})
        post.start()
        wait_until(lambda: len(triton.calls) == 1)
        events = _stream(client, [{}, to_pcm16(_tone(1.0)).astype("<i2").tobytes()])
        client.portal.call(triton.gate.set)
        post.join()
    assert "limit of 1 requests in progress (waited 0.2 s)" in events[0]["error"] and events[-1] == {"close": 1013}


def test_a_triton_failure_in_a_window_ends_the_stream_with_its_kinds_code() -> None:
    triton = FakeTriton.serving(KWS)
    triton.errors.append(TritonError("INTERNAL", "onnxruntime failed"))
    with gateway_app(triton) as client:
        events = _stream(client, [{}, np.zeros(16000, "<i2").tobytes()])
    assert "Triton failed" in events[0]["error"] and events[-1] == {"close": 1011}


def test_an_idle_stream_is_closed() -> None:
    with gateway_app(FakeTriton.serving(KWS), stream_idle_s=0.05) as client:
        events = _stream(client, [{}])
    assert "nothing received" in events[0]["error"] and events[-1] == {"close": 1008}


# --- bounded and charged: authentication before a slot, floors, pace, falling behind ------------------------


def test_a_flood_of_sockets_without_the_token_takes_no_stream_slot() -> None:
    settings = {"api_token": SecretStr("t0k"), "max_streams": 2, "stream_config_timeout_s": 5.0}
    with gateway_app(FakeTriton.serving(KWS), **settings) as client, contextlib.ExitStack() as silent:
        for _ in range(6):  # connected, silent, no token: each waits for its first message
            silent.enter_context(client.websocket_connect("/stream"))
        audio = np.zeros(16000, "<i2").tobytes()
        events = _stream(client, [{}, audio, {"event": "end"}], headers={"Authorization": "Bearer t0k"})
    assert "predictions" in events[0] and events[-1] == {"close": 1000}


def test_a_wrong_token_in_the_header_is_refused_before_any_message() -> None:
    with gateway_app(FakeTriton.serving(KWS), api_token=SecretStr("t0k")) as client:
        events = _stream(client, [], headers={"Authorization": "Bearer wrong"})
    assert "API token" in events[0]["error"] and events[-1] == {"close": 1008}


def test_the_first_message_must_come_within_the_config_timeout() -> None:
    with gateway_app(FakeTriton.serving(KWS), stream_config_timeout_s=0.05) as client:
        events = _stream(client, [])
    assert "nothing received for 0.05 s" in events[0]["error"] and events[-1] == {"close": 1008}


@pytest.mark.parametrize(("window_s", "allowed"), [(0.01, False), (0.099, False), (0.1, True)])
def test_a_window_is_at_least_a_tenth_of_a_second_whatever_the_models_minimum(window_s: float, allowed: bool) -> None:
    model = metadata("tiny", min_samples=10)  # shorter than the floor
    if allowed:
        assert window_and_hop(StreamConfig(window_s=window_s), model) == (1600, 800)  # default hop: the floor
    else:
        with pytest.raises(BadRequest, match="at least 0.1 s"):
            window_and_hop(StreamConfig(window_s=window_s), model)


def test_the_pace_holds_windows_to_the_maximum_speed() -> None:
    pace = Pace(max_speed=4.0)
    pace.received(1.0, waited_s=0.5, now=100.0)
    assert pace.wait_s(1.0, now=100.0) == 0.25 and pace.wait_s(2.0, now=100.1) == pytest.approx(0.4)
    assert pace.wait_s(0.2, now=100.1) == 0.0


def test_behind_counts_only_audio_that_waited_for_the_server() -> None:
    pace = Pace(max_speed=4.0)
    pace.received(0.1, waited_s=0.1, now=10.0)
    pace.received(0.1, waited_s=0.1, now=10.1)  # a real-time client, the server idle between messages
    assert pace.behind_s(10.1) == pytest.approx(0.0)
    pace.received(0.1, waited_s=0.0, now=11.1)  # queued: the server took a second over the last window
    assert pace.behind_s(11.1) == pytest.approx(0.9)
    pace.received(0.1, waited_s=5.0, now=16.2)  # the client paused for five seconds: not the server's lag
    assert pace.behind_s(16.2) == pytest.approx(0.0)
    fast = Pace(max_speed=4.0)
    fast.received(10.0, waited_s=0.0, now=0.0)
    fast.received(10.0, waited_s=0.0, now=1.0)  # ten times real time: ahead, never behind
    assert fast.behind_s(1.0) < 0


def test_one_large_message_is_scored_no_faster_than_the_maximum_speed() -> None:
    triton = FakeTriton.serving(KWS)
    audio = np.zeros(32000, "<i2").tobytes()  # 2 s: windows end at 1, 1.5 and 2 s of audio
    with gateway_app(triton, stream_max_speed=4.0) as client:
        sent = time.monotonic()  # the first audio arrives after this
        events = _stream(client, [{}, audio, {"event": "end"}])
    assert events[-1] == {"close": 1000}
    since_sent = [call.at - sent for call in triton.calls]
    assert len(since_sent) == 3 and all(t >= end / 4.0 for t, end in zip(since_sent, (1.0, 1.5, 2.0), strict=True)), (
        since_sent
    )


def test_a_stream_the_server_cannot_keep_up_with_is_told_and_closed() -> None:
    triton = FakeTriton.serving(KWS)
    triton.delay_s = 0.3  # each window: 0.3 s for 0.1 s of new audio
    config = {"window_s": 0.5, "hop_s": 0.1}
    chunk = np.zeros(1600, "<i2").tobytes()  # 0.1 s, sent in real time
    with gateway_app(triton, stream_max_lag_s=0.5) as client, client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps(config))
        sender = threading.Thread(target=_send_in_real_time, args=(ws, chunk, 40), daemon=True)
        sender.start()
        events = _events_until_close(ws)
    error, close = events[-2], events[-1]
    assert "behind real time" in error["error"] and close == {"close": 1013}


def test_a_client_that_pauses_is_not_behind() -> None:
    triton = FakeTriton.serving(KWS)
    chunk = np.zeros(8000, "<i2").tobytes()  # 0.5 s
    with gateway_app(triton, stream_max_lag_s=0.2) as client, client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps({"window_s": 0.5, "hop_s": 0.5}))
        ws.send_bytes(chunk)
        first = ws.receive_json()
        time.sleep(0.6)  # longer than the lag limit, with nothing to score
        ws.send_bytes(chunk)
        second = ws.receive_json()
        ws.send_text(json.dumps({"event": "end"}))
        close = ws.receive()
    assert (first["end_s"], second["end_s"], close["code"]) == (0.5, 1.0, 1000)


def _send_in_real_time(ws: object, chunk: bytes, count: int) -> None:
    with contextlib.suppress(Exception):  # the server may close first
        for _ in range(count):
            ws.send_bytes(chunk)  # type: ignore[attr-defined]
            time.sleep(len(chunk) / 2 / 16000)


def _events_until_close(ws: object) -> list[dict]:
    events = []
    while True:
        message = ws.receive()  # type: ignore[attr-defined]
        if message["type"] == "websocket.close":
            return [*events, {"close": message["code"]}]
        events.append(json.loads(message["text"]))


class _ClosedSocket:
    """A WebSocket uvicorn has closed under the app (a keepalive ping went unanswered)."""

    application_state = WebSocketState.CONNECTED
    sent: list[str] = []

    async def send_text(self, text: str) -> None:
        raise RuntimeError("Unexpected ASGI message 'websocket.send', after sending 'websocket.close'")


def test_a_send_on_a_socket_closed_under_the_stream_is_a_disconnect_not_a_failure() -> None:
    stream = Stream(_ClosedSocket(), SimpleNamespace(settings=settings()), None)  # type: ignore[arg-type]
    with pytest.raises(WebSocketDisconnect):
        asyncio.run(stream._send({"start_s": 0}))


def test_nothing_is_sent_after_a_close() -> None:
    socket = _ClosedSocket()
    socket.application_state = WebSocketState.DISCONNECTED
    asyncio.run(_close_with(socket, "late", CloseCode.TRY_AGAIN))  # type: ignore[arg-type]
