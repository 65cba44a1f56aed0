"""Live audio over a WebSocket: raw PCM in, one classification per window out.

The protocol (README, "Live audio"): the client's first message is JSON text (``StreamConfig``); then binary
messages of raw PCM of any size; then ``{"event": "end"}``. For every complete window the server sends
``{"start_s", "end_s", "predictions"}``. Each window is sent to Triton as a 16-bit WAV at the model's rate,
exactly what POSTing that window's samples sends, so its scores are the same, through the same inference path
(``gateway.inference``: admission, on-demand use, lane, Triton). Errors are the gateway's error kinds: the
client gets ``{"error": ...}``, then the kind's close code (``gateway.errors.CloseCode``).

Bounded and charged per stream: the token is checked before a stream slot is taken (at the handshake, or in
the first message, which must come within ``GATEWAY_STREAM_CONFIG_TIMEOUT_S``); one message at a time is
read, and its windows are scored one at a time before the next is read, so a stream has at most one window in
flight and a client that sends faster than real time is slowed by TCP back-pressure, never buffered (at most
a window and one message of audio are held); windows are scored no faster than ``GATEWAY_STREAM_MAX_SPEED`` x
real time, so one message cannot buy thousands of inferences at once; each window takes a classification
permit like a POST (``gateway.inference``), waiting in line for one where a POST would be refused (refused, the
stream would end; ``gateway.admission``); a stream that falls ``GATEWAY_STREAM_MAX_LAG_S`` behind real time
(the server cannot keep up) is told so and closed; messages are capped in bytes; a silent client is closed
after an idle timeout; the number of streams is capped. Windows of concurrent streams reach Triton
concurrently, where the dynamic batcher groups them.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import time
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import soxr
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gateway import decode_cost
from gateway.dependencies import Services, token_ok
from gateway.errors import BadRequest, CloseCode, GatewayError, Overloaded, RequestTimeout, TooLarge, Unauthorized
from gateway.logs import request_id_of
from gateway.metrics import Outcome
from gateway.schemas import Parameters
from triton_steps.contract import MAX_RATE, PCM16_SCALE
from triton_steps.metadata import ModelMetadata

logger = logging.getLogger(__name__)

MIN_HOP_S = 0.05
SLICE_S = 0.5  # a message is decoded, resampled and windowed this much audio at a time
MIN_WINDOW_S = 0.1  # and the model's shortest clip
# A receive that waited this long found no message queued: the client was idle, not backlogged (a queued
# message is returned in well under a millisecond).
IDLE_GAP_S = 0.02
MAX_WINDOW_S = 30.0
DEFAULT_HOP_FRACTION = 0.5  # hop_s defaults to half the window
MIN_FINAL_S = 0.1  # the last, partial window is scored at the end if at least this long (and the model's minimum)


class StreamConfig(BaseModel):
    """The first message of a stream."""

    model_config = ConfigDict(extra="forbid")

    sampling_rate: int = Field(16000, ge=1000, le=MAX_RATE, strict=True)
    encoding: Literal["pcm_s16le", "pcm_f32le"] = "pcm_s16le"
    window_s: float | None = Field(None, gt=0, le=MAX_WINDOW_S, description="default: the model's own window")
    hop_s: float | None = Field(None, ge=MIN_HOP_S, description="default: half the window")
    parameters: Parameters = Field(default_factory=Parameters)
    token: str | None = Field(None, description="the API token, for browsers (which cannot set headers)")


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) as int16 (rounded, clipped)."""
    return np.clip(np.rint(samples * PCM16_SCALE), -32768, 32767).astype(np.int16)


def wav16(samples: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit PCM WAV of float ``samples``: what a stream sends Triton for each window."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(to_pcm16(samples).astype("<i2").tobytes())
    return buffer.getvalue()


@dataclass
class PcmDecoder:
    """Raw little-endian PCM bytes, in messages cut anywhere, to float32 samples."""

    encoding: str
    _carry: bytes = b""

    @property
    def width(self) -> int:
        """Bytes per sample."""
        return 2 if self.encoding == "pcm_s16le" else 4

    def decode(self, data: bytes | memoryview) -> np.ndarray:
        width = self.width
        data = self._carry + bytes(data)
        whole = len(data) - len(data) % width
        self._carry = data[whole:]
        if self.encoding == "pcm_s16le":
            return np.frombuffer(data[:whole], "<i2").astype(np.float32) / np.float32(PCM16_SCALE)
        samples = np.frombuffer(data[:whole], "<f4").astype(np.float32)
        if not np.isfinite(samples).all():
            raise BadRequest("the audio contains NaN or infinite samples")
        return samples


@dataclass
class Windower:
    """Samples at the model's rate in; complete windows (start sample, samples) out, every ``hop`` samples.
    Holds only the audio from the next window's start on."""

    window: int
    hop: int
    _buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    _offset: int = 0  # stream position of _buffer[0]
    _next: int = 0  # start of the next window to score

    def push(self, samples: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Add ``samples``; yield each window they complete, one at a time (scored before the next is cut)."""
        self._buffer = np.concatenate([self._buffer, samples])
        while self._next + self.window <= self._offset + len(self._buffer):
            begin = self._next - self._offset
            yield self._next, self._buffer[begin : begin + self.window].copy()
            self._next += self.hop
        drop = min(self._next - self._offset, len(self._buffer))
        self._buffer, self._offset = self._buffer[drop:], self._offset + drop

    def final(self, min_samples: int) -> tuple[int, np.ndarray] | None:
        """At the end of the stream: the next window, partial, if it holds audio no window covered and is at
        least ``min_samples`` long."""
        end = self._offset + len(self._buffer)
        covered = self._next - self.hop + self.window if self._next else 0
        if end <= covered or end - self._next < min_samples:
            return None
        return self._next, self._buffer[self._next - self._offset :].copy()


def window_and_hop(config: StreamConfig, metadata: ModelMetadata) -> tuple[int, int]:
    """A stream's window and hop, in samples at the model's rate; ``BadRequest`` when they cannot work."""
    rate = metadata.sampling_rate
    window_s = config.window_s or metadata.window_seconds
    if window_s is None:
        raise BadRequest(f"model {metadata.model_id!r} records no window: set window_s")
    hop_s = config.hop_s or window_s * DEFAULT_HOP_FRACTION
    if hop_s > window_s:
        raise BadRequest(f"hop_s ({hop_s:g}) must not exceed window_s ({window_s:g})")
    window, shortest = round(window_s * rate), max(metadata.min_samples, math.ceil(MIN_WINDOW_S * rate))
    if window < shortest:
        raise BadRequest(f"window_s must be at least {shortest / rate:g} s")
    if hop_s < MIN_HOP_S:  # defaults included: half of the shortest window is exactly the floor
        raise BadRequest(f"hop_s must be at least {MIN_HOP_S:g} s")
    return window, max(1, round(hop_s * rate))


@dataclass
class Pace:
    """A stream's clock: when its next window may be scored (no faster than ``max_speed`` x real time from
    its first audio) and how far behind real time its audio is (audio that waited for the server; the client's
    own pauses do not count)."""

    max_speed: float
    _started: float | None = None  # time.monotonic() of the first audio
    _origin: float = 0.0  # when audio time 0 would have arrived, had the stream been real time since
    _received_s: float = 0.0

    def received(self, seconds: float, waited_s: float, now: float) -> None:
        """``seconds`` of audio arrived at ``now``, after the server waited ``waited_s`` for it."""
        if self._started is None:
            self._started = now
        self._received_s += seconds
        if waited_s >= IDLE_GAP_S or self._started == now:  # nothing was queued: the stream is not behind
            self._origin = now - self._received_s

    def behind_s(self, now: float) -> float:
        """Seconds the stream's audio is behind real time (negative: ahead)."""
        return now - self._origin - self._received_s

    def wait_s(self, audio_end_s: float, now: float) -> float:
        """How long to wait before scoring the window that ends at ``audio_end_s`` of the stream's audio."""
        started = now if self._started is None else self._started
        return max(0.0, started + audio_end_s / self.max_speed - now)


class Stream:
    """One WebSocket stream, from its first message to its close."""

    def __init__(self, websocket: WebSocket, services: Services, model_id: str | None) -> None:
        self.websocket = websocket
        self.services = services
        self.model_id = model_id
        self.settings = services.settings

    async def _receive(self, timeout_s: float) -> tuple[dict, float]:
        """The next message, and how long it was waited for."""
        started = time.monotonic()
        try:
            message = await asyncio.wait_for(self.websocket.receive(), timeout_s)
        except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10's is not the builtin
            raise RequestTimeout(f"nothing received for {timeout_s:g} s") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        size = len(message.get("bytes") or b"") + len((message.get("text") or "").encode())
        if size > self.settings.stream_max_message_bytes:
            limit = self.settings.stream_max_message_bytes
            raise TooLarge(f"a message of {size} bytes; the limit is {limit}")
        return message, time.monotonic() - started

    def _check_token(self, presented: str) -> None:
        if not token_ok(self.services, presented):
            raise Unauthorized(
                "missing or invalid API token: send it as 'Authorization: Bearer <token>' or as \"token\" in the "
                "first message"
            )

    async def configure(self) -> StreamConfig:
        """The first message, authenticated; before any stream slot is taken, so a client without the token
        holds only its connection, and only for ``GATEWAY_STREAM_CONFIG_TIMEOUT_S``."""
        header = self.websocket.headers.get("authorization")
        if header is not None:
            self._check_token(header)
        message, _ = await self._receive(self.settings.stream_config_timeout_s)
        if message.get("text") is None:
            raise BadRequest("the first message must be the JSON configuration (text)")
        try:
            config = StreamConfig.model_validate_json(message["text"])
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:3])
            raise BadRequest(f"bad configuration: {problems}") from None
        if header is None:
            self._check_token(f"Bearer {config.token}" if config.token else "")
        return config

    async def _send(self, event: dict) -> None:
        try:
            await self.websocket.send_text(json.dumps(event))
        except RuntimeError as error:  # uvicorn closed the connection meanwhile (a keepalive ping went unanswered)
            raise WebSocketDisconnect(CloseCode.GOING_AWAY) from error

    async def _score(self, metadata: ModelMetadata, config: StreamConfig, start: int, samples: np.ndarray) -> None:
        rate = metadata.sampling_rate
        audio, request_id = wav16(samples, rate), request_id_of(self.websocket.scope)
        outcome = Outcome(metadata.model_id)
        # the window's cost is known (mono, at the model's rate): its header need not be read again
        heavy = decode_cost.heavy_samples(len(samples))
        # at the gateway's cap the window waits for a slot (gateway.admission), as long as the stream may lag
        predictions = await self.services.inference.run(
            metadata, audio, config.parameters, request_id, outcome, heavy, self.settings.stream_max_lag_s
        )
        self.services.metrics.stream_windows.labels(metadata.model_id).inc()
        end = start + len(samples)
        await self._send(
            {"start_s": start / rate, "end_s": end / rate, "predictions": [p.model_dump() for p in predictions]}
        )

    async def _score_all(
        self, metadata: ModelMetadata, config: StreamConfig, pace: Pace, windows: Iterable[tuple[int, np.ndarray]]
    ) -> None:
        """Score ``windows`` one at a time, each no sooner than the stream's pace allows."""
        for start, chunk in windows:
            await asyncio.sleep(pace.wait_s((start + len(chunk)) / metadata.sampling_rate, time.monotonic()))
            await self._score(metadata, config, start, chunk)

    async def run(self, config: StreamConfig) -> None:
        # An on-demand model not loaded yet: the stream closes with 1013 (try again later), the loading started.
        metadata = await self.services.inference.resolve(self.model_id)
        window, hop = window_and_hop(config, metadata)
        rate = metadata.sampling_rate
        decoder = PcmDecoder(config.encoding)
        resampler = (
            None
            if config.sampling_rate == rate
            else soxr.ResampleStream(config.sampling_rate, rate, 1, dtype="float32", quality="VHQ")
        )
        windower, pace = Windower(window, hop), Pace(self.settings.stream_max_speed)
        slice_bytes = decoder.width * math.ceil(SLICE_S * config.sampling_rate)
        while True:
            message, waited_s = await self._receive(self.settings.stream_idle_s)
            if message.get("bytes") is not None:
                data = memoryview(message.pop("bytes"))
                # In slices: a message's float samples, resampled and windowed, are held a slice at a time.
                for offset in range(0, len(data), slice_bytes):
                    samples = decoder.decode(data[offset : offset + slice_bytes])
                    pace.received(
                        len(samples) / config.sampling_rate, waited_s if not offset else 0.0, time.monotonic()
                    )
                    self._check_pace(pace)
                    if resampler is not None:
                        samples = resampler.resample_chunk(samples)
                    await self._score_all(metadata, config, pace, windower.push(samples))
                continue
            try:
                event = json.loads(message["text"])
            except ValueError:
                event = None
            if event != {"event": "end"}:
                raise BadRequest('text messages after the first must be {"event": "end"}')
            if resampler is not None:
                tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                await self._score_all(metadata, config, pace, windower.push(tail))
            last = windower.final(max(metadata.min_samples, round(MIN_FINAL_S * rate)))
            if last is not None:
                await self._score_all(metadata, config, pace, [last])
            await self.websocket.close(CloseCode.NORMAL)
            return

    def _check_pace(self, pace: Pace) -> None:
        behind_s, limit_s = pace.behind_s(time.monotonic()), self.settings.stream_max_lag_s
        if behind_s > limit_s:
            raise Overloaded(
                f"the stream fell {behind_s:.1f} s behind real time (the limit is {limit_s:g} s): the gateway "
                "cannot keep up; retry later"
            )


async def serve_stream(websocket: WebSocket, services: Services, model_id: str | None) -> None:
    """Accept ``websocket`` and run its stream to the end, whatever the client does; every error becomes
    ``{"error"}`` and its close code, and the stream's slot is always given back."""
    await websocket.accept()
    try:
        stream = Stream(websocket, services, model_id)
        config = await stream.configure()
        async with services.admission.stream():
            await stream.run(config)
    except WebSocketDisconnect:
        pass  # the client went away: nothing to answer
    except GatewayError as error:
        await _close_with(websocket, error.message, error.close_code)
    except Exception as error:  # noqa: BLE001 - every failure ends this stream alone, with a close code
        logger.exception("stream failed")
        await _close_with(websocket, f"internal error: {type(error).__name__}", CloseCode.SERVER_ERROR)


async def _close_with(websocket: WebSocket, message: str, code: CloseCode) -> None:
    """``{"error": message}``, then the close: unless the stream is closed already (nothing after a close)."""
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    try:
        await websocket.send_text(json.dumps({"error": message}))
        await websocket.close(code)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # gone meanwhile
