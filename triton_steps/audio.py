"""Audio file bytes -> mono float32 waveform at the model's sampling rate, with bounded work.

Decoding is streamed, block by block: libsndfile (through soundfile) for what it reads well (WAV of any
sample format incl. u-law / A-law / ADPCM, OGG Vorbis / Opus, MP3, AIFF, CAF), FFmpeg's libraries (through
PyAV) for everything else: FLAC (libsndfile trusts its header's length, and fails on FLAC written to a pipe,
whose length is 0), WebM / Matroska, MP4 / M4A with AAC or ALAC, AMR-NB / WB, bare Opus, ... The container is
sniffed from the bytes, never from a Content-Type. A header's claimed length is never trusted for an
allocation: decoding stops as soon as the audio passes ``max_seconds``, and rates and channel counts beyond
``MAX_RATE`` / ``MAX_CHANNELS`` are refused before decoding, and decoding stops once frames x channels pass
the decode budget (``DECODE_BUDGET_SAMPLES_PER_S`` per second of ``max_seconds``). Each block is downmixed to
mono as ``ffmpeg -ac 1`` does it (transformers' pipeline decodes bytes with that command): FFmpeg's own mixing
matrix for the file's channel layout, so files of more than two channels are decoded by FFmpeg, which knows
their layout. Then soxr's streaming resampler (VHQ, as FFmpeg's soxr), so memory is the result at the
target rate.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np
import soundfile
import soxr

from triton_steps.contract import MAX_RATE, PCM16_SCALE

MAX_CHANNELS = 32
# Decoding costs per decoded sample (frames x channels: 5-14 ns each here, whatever the format), so each
# limit alone (rate, channels, seconds) still let a 400 kB FLAC of 119 s x 8 channels x 384 kHz cost 2.3 s of
# CPU. The budget bounds the product: at most the samples of ``max_seconds`` of 48 kHz stereo, the most a
# real recording of the model's longest clip holds; decoding stops as soon as the audio passes it.
DECODE_BUDGET_SAMPLES_PER_S = 48_000 * 2
BLOCK_FRAMES = 65_536
MAX_SOUNDFILE_CHANNELS = 2  # libsndfile does not say a file's channel layout: more channels are FFmpeg's
FORMATS_HINT = "WAV, FLAC, MP3, OGG (Vorbis / Opus), WebM, MP4 / M4A (AAC, ALAC), AMR, AIFF or CAF"


class AudioError(ValueError):
    """The request's audio cannot be classified; the message says why, for the client."""


@dataclass
class Stream:
    """An opened audio file: its rate, its channel count and layout (FFmpeg's), and its samples as
    ``(frames, channels)`` blocks."""

    rate: int
    channels: int
    layout: av.AudioLayout
    blocks: Iterator[np.ndarray]


def _soundfile_stream(data: bytes) -> Stream | None:
    try:
        file = soundfile.SoundFile(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None  # not a container libsndfile reads: FFmpeg may
    if file.format == "FLAC" or file.channels > MAX_SOUNDFILE_CHANNELS:
        file.close()
        return None

    # 16-bit PCM, the commonest WAV, is read as int16 and scaled here: the same floats as libsndfile's own
    # conversion (x / 32768, exact in float32) at a quarter of its cost.
    pcm16 = file.subtype == "PCM_16"

    def blocks() -> Iterator[np.ndarray]:
        with file:
            while True:
                try:
                    block = file.read(BLOCK_FRAMES, dtype="int16" if pcm16 else "float32", always_2d=True)
                except (soundfile.LibsndfileError, RuntimeError) as error:
                    raise AudioError(f"the audio is corrupt or truncated: {error}") from None
                if not len(block):
                    return
                yield block * np.float32(1 / PCM16_SCALE) if pcm16 else block

    return Stream(
        int(file.samplerate), int(file.channels), av.AudioLayout("mono" if file.channels == 1 else "stereo"), blocks()
    )


def _ffmpeg_stream(data: bytes) -> Stream:
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, IndexError) as error:
        reason = re.sub(r"^\[Errno \d+\] ", "", str(error)).split(": '<")[0].rstrip(". ")
        raise AudioError(f"could not decode the audio ({len(data)} bytes): {reason}. Send {FORMATS_HINT}.") from None
    if not container.streams.audio:
        container.close()
        raise AudioError(f"the file ({container.format.name}) holds no audio stream")
    stream = container.streams.audio[0]
    if stream.codec_context is None:  # e.g. a WAV header claiming 0 or 255 bits per sample: no decoder
        container.close()
        raise AudioError(f"the file ({container.format.name}) holds audio in an encoding no decoder here reads")
    rate = int(stream.codec_context.sample_rate or 0)
    channels = int(stream.codec_context.channels or 0)

    def blocks() -> Iterator[np.ndarray]:
        with container:
            try:
                for frame in container.decode(stream):
                    if frame.sample_rate != rate or len(frame.layout.channels) != channels:
                        raise AudioError("the audio changes its sampling rate or channel count midway")
                    array = frame.to_ndarray()
                    if array.dtype.kind == "i":  # integer PCM: scale to [-1, 1)
                        array = array / np.float32(2 ** (8 * array.dtype.itemsize - 1))
                    elif array.dtype.kind == "u":  # 8-bit unsigned PCM
                        array = (array - np.float32(128)) / np.float32(128)
                    packed = frame.format.is_packed
                    yield np.ascontiguousarray(array.reshape(-1, channels) if packed else array.T, dtype=np.float32)
            except av.FFmpegError as error:
                raise AudioError(f"the audio is corrupt or truncated: {error}") from None

    return Stream(rate, channels, stream.codec_context.layout, blocks())


def open_stream(data: bytes) -> Stream:
    """Sniff the container and open it; the rate and channel count are checked before any decoding."""
    if not data:
        raise AudioError("empty audio: the request carried no bytes")
    stream = _soundfile_stream(data) or _ffmpeg_stream(data)
    if not 0 < stream.rate <= MAX_RATE:
        raise AudioError(f"unsupported sampling rate {stream.rate} Hz (at most {MAX_RATE})")
    if not 0 < stream.channels <= MAX_CHANNELS:
        raise AudioError(f"unsupported channel count {stream.channels} (at most {MAX_CHANNELS})")
    return stream


def _limited(stream: Stream, max_seconds: float | None) -> Iterator[np.ndarray]:
    """The blocks, checked: finite samples, and stopped with an error once past ``max_seconds`` or past the
    decode budget."""
    limit = None if max_seconds is None else int(max_seconds * stream.rate)
    budget = None if max_seconds is None else int(max_seconds * DECODE_BUDGET_SAMPLES_PER_S)
    total = 0
    for block in stream.blocks:
        total += len(block)
        if limit is not None and total > limit:
            raise AudioError(
                f"the audio is longer than {max_seconds:g} s; this model accepts at most {max_seconds:g} s"
            )
        if budget is not None and total * stream.channels > budget:
            raise AudioError(
                f"the audio costs more to decode than this model allows: {stream.channels} channels at "
                f"{stream.rate} Hz pass {budget} samples (the budget: {max_seconds:g} s of 48 kHz stereo) "
                f"after {total / stream.rate:.1f} s; downmix or resample it first"
            )
        if not np.isfinite(block).all():
            raise AudioError("the audio contains NaN or infinite samples")
        yield block


def decode(data: bytes, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Every channel: float32 ``(frames, channels)`` and the sampling rate."""
    stream = open_stream(data)
    blocks = list(_limited(stream, max_seconds))
    if not blocks:
        raise AudioError("empty audio: the file decodes to no samples")
    return np.concatenate(blocks), stream.rate


class Downmix:
    """``(frames, channels)`` blocks in channel ``layout`` to one channel as ``ffmpeg -ac 1`` does: FFmpeg's own
    mixing matrix (swresample; stereo: 0.707 (L + R), not the average). One mixer serves a whole stream: at the
    same rate it holds no samples back, so each block comes out whole."""

    RATE = 48_000  # any rate: it is kept, only the channels are mixed

    def __init__(self, layout: av.AudioLayout) -> None:
        self.layout = layout
        mono = len(layout.channels) == 1
        self.mixer = None if mono else av.AudioResampler(format="flt", layout="mono", rate=self.RATE)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        if self.mixer is None or not len(samples):
            return samples[:, 0].copy()
        # Packed: one plane, whatever the channel count (PyAV's planar frames stop at 8 planes).
        packed = np.ascontiguousarray(samples).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=self.layout)
        frame.sample_rate = self.RATE
        mixed = [out.to_ndarray().reshape(-1) for out in self.mixer.resample(frame)]
        return np.concatenate(mixed) if mixed else np.zeros(0, np.float32)


def resample(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono waveform with soxr (VHQ); a no-op at the same rate."""
    if rate == target_rate:
        return waveform
    return soxr.resample(waveform, rate, target_rate, quality="VHQ").astype(np.float32, copy=False)


def load(data: bytes, target_rate: int, min_samples: int = 1, max_seconds: float | None = None) -> np.ndarray:
    """Decode, downmix and resample ``data``, block by block (memory: the result, at the target rate);
    enforce the model's length limits."""
    stream = open_stream(data)
    downmix = Downmix(stream.layout)
    if stream.rate == target_rate:
        mono = [downmix(block) for block in _limited(stream, max_seconds)]
    else:  # soxr's streaming resampler gives the same samples as resampling the whole waveform at once
        resampler = soxr.ResampleStream(stream.rate, target_rate, 1, dtype="float32", quality="VHQ")
        mono = [resampler.resample_chunk(downmix(block)) for block in _limited(stream, max_seconds)]
        mono.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    if not any(len(part) for part in mono):
        raise AudioError("empty audio: the file decodes to no samples")
    waveform = np.concatenate(mono)
    if len(waveform) < min_samples:
        raise AudioError(
            f"the audio is too short: {len(waveform)} samples at {target_rate} Hz; "
            f"this model needs at least {min_samples} ({min_samples / target_rate * 1000:.0f} ms)"
        )
    return waveform
