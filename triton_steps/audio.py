"""Audio file bytes -> mono float32 waveform at the model's sampling rate.

Decoding is libsndfile's (through soundfile: WAV of any sample format, FLAC, OGG/Vorbis, Opus, MP3, AIFF,
...), resampling is soxr's (the same very-high-quality resampler that FFmpeg offers as ``-af aresample``
with soxr), and channels are downmixed by averaging them.
"""

from __future__ import annotations

import io
import re

import numpy as np
import soundfile
import soxr


class AudioError(ValueError):
    """The request's audio cannot be classified; the message says why, for the client."""


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 samples of shape ``(frames, channels)`` and its sampling rate."""
    if not data:
        raise AudioError("empty audio: the request carried no bytes")
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        reason = re.sub(r"^Error opening .*?: ", "", str(error)).rstrip(". ")
        raise AudioError(
            f"could not decode the audio ({len(data)} bytes): {reason}. Send a WAV, FLAC, OGG/Vorbis, Opus or MP3 file."
        ) from None
    if samples.size == 0:
        raise AudioError("empty audio: the file decodes to no samples")
    if not np.isfinite(samples).all():
        raise AudioError("the audio contains NaN or infinite samples")
    return samples, int(rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a ``(frames, channels)`` array into one."""
    return samples[:, 0].copy() if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)


def resample(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono waveform with soxr (VHQ); a no-op at the same rate."""
    if rate == target_rate:
        return waveform
    return soxr.resample(waveform, rate, target_rate, quality="VHQ").astype(np.float32, copy=False)


def load(data: bytes, target_rate: int, min_samples: int = 1, max_seconds: float | None = None) -> np.ndarray:
    """Decode, downmix and resample ``data``; enforce the model's length limits (in the target rate)."""
    samples, rate = decode(data)
    seconds = len(samples) / rate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(f"the audio is {seconds:.2f} s long; this model accepts at most {max_seconds:g} s")
    waveform = resample(to_mono(samples), rate, target_rate)
    if len(waveform) < min_samples:
        raise AudioError(
            f"the audio is too short: {len(waveform)} samples at {target_rate} Hz; "
            f"this model needs at least {min_samples} ({min_samples / target_rate * 1000:.0f} ms)"
        )
    return waveform
