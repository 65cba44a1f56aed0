"""Live streams in process: PCM decoding, windowing and the window's WAV as pure functions, then the protocol
through the app in front of a stand-in Triton (configuration, windows, the end, errors and close codes)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile
from fake_triton import FakeTriton, gateway_app, metadata
from pydantic import SecretStr

from gateway.errors import BadRequest
from gateway.streaming import PcmDecoder, StreamConfig, Windower, to_pcm16, wav16, window_and_hop
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
