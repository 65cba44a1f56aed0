"""Audio file bytes -> mono float32 waveform at the model's sampling rate, as transformers' pipeline decodes them.

``pipeline("audio-classification")(bytes)`` runs ``ffmpeg -i pipe:0 -ac 1 -ar SR -f f32le pipe:1``. This module
does the same work with FFmpeg's own libraries, through PyAV:

- the body is read as the CLI reads a pipe: unseekable (demuxers then behave as the CLI's do: MP3's end padding
  is kept, for one), with an I/O buffer that holds it all (so an MP4 whose index follows its audio still opens);
- the same demuxers and decoders (encoder delay, lengths and float decoders as the CLI's);
- the same filter graph: ``abuffer -> aformat=flt:mono:SR -> abuffersink``, where libavfilter inserts
  ``aresample`` with libswresample's defaults, which is what ``-ac 1 -ar SR`` asks for (not soxr).

Measured against the CLI of the same FFmpeg release (``FFMPEG_VERSION``): the same lengths and samples within
1.5e-7 (float SIMD) over every format, rate and channel count the tests generate. Other FFmpeg releases decode
some files to other lengths (FFmpeg 9 trims AAC's end padding in MP4, which 7 and 8 keep), which is why PyAV is
pinned. Mono 16-bit PCM WAV at the model's rate is read without FFmpeg (the standard library's ``wave``): the
same samples, bit for bit (``x / 32768``), at a fraction of the cost.

Only audio is opened: FFmpeg probes the container from the bytes, and any demuxer outside ``DEMUXERS`` (ffconcat,
SDP, HLS, image sequences, ...) is refused before it reads a header, so client bytes never make it open a file
or a socket. A header's claimed length is never trusted for an allocation: decoding stops as soon as the audio
passes ``max_seconds``, rates and channel counts beyond ``MAX_RATE`` / ``MAX_CHANNELS`` are refused before
decoding, and decoding stops once frames x channels pass the decode budget (``DECODE_BUDGET_SAMPLES_PER_S`` per
second of ``max_seconds``). Memory is the body, the I/O buffer and the result at the target rate.
"""

from __future__ import annotations

import io
import re
import wave
from collections.abc import Iterator

import av
import numpy as np
import soxr

from triton_steps.contract import MAX_RATE, PCM16_SCALE

MAX_CHANNELS = 32
# Decoding costs per decoded sample (frames x channels), so each limit alone (rate, channels, seconds) still
# let a 400 kB FLAC of 119 s x 8 channels x 384 kHz cost seconds of CPU. The budget bounds the product: at most
# the samples of ``max_seconds`` of 48 kHz stereo, the most a real recording of the model's longest clip holds.
DECODE_BUDGET_SAMPLES_PER_S = 48_000 * 2
# FFmpeg's demuxers for the formats the README lists (a demuxer's name may list several, "mov,mp4,m4a,..."):
# WAV (and RF64), FLAC, OGG (Vorbis, Opus, FLAC), MP3, Matroska / WebM, MP4 / M4A / 3GP, AMR, AIFF, CAF, ADTS AAC.
DEMUXERS = ("wav", "flac", "ogg", "mp3", "matroska", "mov", "amr", "aiff", "caf", "aac")
FORMATS_HINT = "WAV, FLAC, MP3, OGG (Vorbis / Opus), WebM, MP4 / M4A (AAC, ALAC), AMR, AIFF or CAF"
FFMPEG_VERSION = av.ffmpeg_version_info
IO_BUFFER_BYTES = 32_768  # FFmpeg's own for a pipe; a larger body gets a buffer its size
_OPEN_OPTIONS = {
    "format_whitelist": ",".join(DEMUXERS),
    "protocol_whitelist": "none",  # no demuxer may open anything beyond the body itself
    # Stream parameters from the first packet, not from 2,500 (the default): 7x cheaper to open a 1 s clip, and
    # the decoded samples are the same (the filter graph is set up from the first decoded frame, as the CLI's).
    "max_probe_packets": "1",
}


def describe(rate: int) -> str:
    """What a model's requests are decoded with, for ``GET /models`` and the docs."""
    return f"FFmpeg {FFMPEG_VERSION} (PyAV {av.__version__}), as `ffmpeg -i - -ac 1 -ar {rate} -f f32le -`"


class AudioError(ValueError):
    """The request's audio cannot be classified; the message says why, for the client."""


class _Pipe:
    """The body as FFmpeg's CLI sees a pipe: read only, never seeked."""

    def __init__(self, data: bytes) -> None:
        self._body = io.BytesIO(data)

    def read(self, size: int) -> bytes:
        return self._body.read(size)


def _open(data: bytes, seekable: bool = False) -> av.container.InputContainer:
    """Open ``data`` with an audio demuxer, or say why not (never with FFmpeg's words about a path). Decoding reads
    it unseekable, as the CLI reads a pipe."""
    if not data:
        raise AudioError("empty audio: the request carried no bytes")
    body = io.BytesIO(data) if seekable else _Pipe(data)
    try:
        return av.open(body, mode="r", buffer_size=max(IO_BUFFER_BYTES, len(data)), options=_OPEN_OPTIONS)
    except av.FFmpegError as error:
        reason = re.sub(r"^\[Errno -?\d+\] ", "", str(error)).split(":")[0].rstrip(". ")
        if "Invalid argument" in reason:  # FFmpeg recognised the bytes, as a demuxer outside DEMUXERS
            reason = "not an audio format read here"
        raise AudioError(f"could not decode the audio ({len(data)} bytes): {reason}. Send {FORMATS_HINT}.") from None
    except (ValueError, IndexError, OSError) as error:
        raise AudioError(f"could not decode the audio ({len(data)} bytes): {type(error).__name__}") from None


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise AudioError(f"the file ({container.format.name}) holds no audio stream")
    stream = container.streams.audio[0]
    if stream.codec_context is None:  # e.g. a WAV header claiming 0 or 255 bits per sample: no decoder
        raise AudioError(f"the file ({container.format.name}) holds audio in an encoding no decoder here reads")
    _check_shape(int(stream.codec_context.sample_rate or 0), int(stream.codec_context.channels or 0))
    return stream


def _check_shape(rate: int, channels: int) -> None:
    if not 0 < rate <= MAX_RATE:
        raise AudioError(f"unsupported sampling rate {rate} Hz (at most {MAX_RATE})")
    if not 0 < channels <= MAX_CHANNELS:
        raise AudioError(f"unsupported channel count {channels} (at most {MAX_CHANNELS})")


def _pcm16_mono_wav(data: bytes, rate: int) -> np.ndarray | None:
    """The samples of a canonical mono 16-bit PCM WAV at ``rate`` (what FFmpeg makes of it, bit for bit), or
    None for anything else: another layout, a streamed header (length 0), a truncated or odd data chunk."""
    if data[:4] != b"RIFF" or data[8:16] != b"WAVEfmt " or data[32:34] != b"\x02\x00":  # block align 2
        return None
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, rate):
                return None
            frames = wav.getnframes()
            pcm = wav.readframes(frames)
    except (wave.Error, EOFError):
        return None
    if not frames or len(pcm) != 2 * frames:
        return None
    return np.frombuffer(pcm, "<i2") * np.float32(1 / PCM16_SCALE)


def _frames(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> Iterator[av.AudioFrame]:
    try:
        yield from container.decode(stream)
    except av.FFmpegError as error:
        reason = re.sub(r"^\[Errno -?\d+\] ", "", str(error)).split(":")[0]
        raise AudioError(f"the audio is corrupt or truncated: {reason}") from None


def _too_long(max_seconds: float) -> AudioError:
    return AudioError(f"the audio is longer than {max_seconds:g} s; this model accepts at most {max_seconds:g} s")


class _Limits:
    """The frames decoded so far, checked against the model's longest clip and the decode budget."""

    def __init__(self, max_seconds: float | None) -> None:
        self.max_seconds = max_seconds
        self.shape: tuple[int, int] | None = None  # the first frame's rate and channel count
        self.frames = self.samples = 0

    def charge(self, frame: av.AudioFrame) -> None:
        rate, channels = frame.sample_rate, len(frame.layout.channels)
        if self.shape is None:
            _check_shape(rate, channels)
            self.shape = (rate, channels)
        elif self.shape != (rate, channels):
            raise AudioError("the audio changes its sampling rate or channel count midway")
        self.frames += frame.samples
        self.samples += frame.samples * channels
        if self.max_seconds is None:
            return
        if self.frames > self.max_seconds * rate:
            raise _too_long(self.max_seconds)
        budget = int(self.max_seconds * DECODE_BUDGET_SAMPLES_PER_S)
        if self.samples > budget:
            raise AudioError(
                f"the audio costs more to decode than this model allows: {channels} channels at {rate} Hz pass "
                f"{budget} samples (the budget: {self.max_seconds:g} s of 48 kHz stereo) after "
                f"{self.frames / rate:.1f} s; downmix or resample it first"
            )


def _decode(data: bytes, target_rate: int, max_seconds: float | None) -> np.ndarray:
    """FFmpeg's decode, mix and resample, frame by frame, within the limits."""
    limits = _Limits(max_seconds)
    with _open(data) as container:
        stream = _audio_stream(container)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
        out: list[np.ndarray] = []
        for frame in _frames(container, stream):
            limits.charge(frame)
            out.extend(mixed.to_ndarray().reshape(-1) for mixed in resampler.resample(frame))
        if limits.frames:
            out.extend(mixed.to_ndarray().reshape(-1) for mixed in resampler.resample(None))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def load(data: bytes, target_rate: int, min_samples: int = 1, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``data`` to mono float32 at ``target_rate`` as ``ffmpeg -ac 1 -ar target_rate -f f32le`` does;
    enforce the model's length limits."""
    waveform = _pcm16_mono_wav(data, target_rate)
    if waveform is None:
        waveform = _decode(data, target_rate, max_seconds)
    elif max_seconds is not None and len(waveform) > max_seconds * target_rate:
        raise _too_long(max_seconds)
    if not len(waveform):
        raise AudioError("empty audio: the file decodes to no samples")
    if not np.isfinite(waveform).all():
        raise AudioError("the audio contains NaN or infinite samples")
    if len(waveform) < min_samples:
        raise AudioError(
            f"the audio is too short: {len(waveform)} samples at {target_rate} Hz; "
            f"this model needs at least {min_samples} ({min_samples / target_rate * 1000:.0f} ms)"
        )
    return waveform


def decode_cost(data: bytes, enough: int) -> int:
    """About how many samples (frames x channels) decoding ``data`` takes, without decoding it: from the header's
    duration where it states one, else counted from the packets up to ``enough`` (where counting stops, so that
    counting stays cheap). Raises ``AudioError`` for what ``load`` would refuse to open."""
    if data[:4] == b"RIFF":
        try:
            with wave.open(io.BytesIO(data)) as wav:
                if wav.getnframes():  # 0: a header written to a pipe, its audio running to the end: FFmpeg's says
                    return wav.getnframes() * wav.getnchannels()
        except (wave.Error, EOFError):
            pass  # another WAV encoding: FFmpeg's header says
    with _open(data, seekable=True) as container:  # seekable: Ogg's duration is its last page's
        stream = _audio_stream(container)
        per_second = stream.codec_context.sample_rate * stream.codec_context.channels
        if container.duration:
            return int(container.duration / av.time_base * per_second)
        frame_size = stream.codec_context.frame_size / stream.codec_context.sample_rate
        seconds = 0.0
        for packet in container.demux(stream):
            if packet.duration:
                seconds += float(packet.duration * stream.time_base)
            elif frame_size:
                seconds += frame_size
            elif packet.size:  # a packet of unknown length: assume the worst
                return enough
            if seconds * per_second >= enough:
                break
        return int(seconds * per_second)


def resample(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono waveform with soxr (VHQ); a no-op at the same rate. For the keyword spotter's training
    data; requests are resampled by ``load``, as FFmpeg does."""
    if rate == target_rate:
        return waveform
    return soxr.resample(waveform, rate, target_rate, quality="VHQ").astype(np.float32, copy=False)
