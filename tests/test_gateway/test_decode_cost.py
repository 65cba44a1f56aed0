"""gateway.decode_cost: heavy from the audio's real length x rate x channels (its header's duration, or its
packets counted), never from the body's size; what is not audio is light (the step refuses it at once)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from audio_formats import corpus_file, ffmpeg_encode

from gateway.decode_cost import HEAVY_SAMPLES, heavy_samples, is_heavy


def _silence(rate: int, channels: int, seconds: float, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    frames = np.zeros((int(rate * seconds), channels), np.int16)
    soundfile.write(buffer, frames, rate, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def _noise(name: str, seconds: float, bitrate: str) -> bytes:
    noise = ["-f", "lavfi", "-i", f"anoisesrc=r=48000:a=0.1:d={seconds}", "-b:a", bitrate]
    return ffmpeg_encode(name, extra_input=noise)


def test_ordinary_clips_are_light() -> None:
    assert not is_heavy(_silence(16_000, 1, 1))
    assert not is_heavy(_silence(96_000, 2, 1, "FLAC"))  # a high rate, but one second of it
    for name in ("mp3-44100-stereo-64k", "opus-webm-48000-mono-32k", "aac-m4a-48000-stereo-256k", "amr-nb-8000-mono"):
        assert not is_heavy(corpus_file(name)), name


@pytest.mark.parametrize("name", ["ogg-opus", "webm-opus", "webm-opus-streamed", "mp4-aac-fragmented", "mp3"])
def test_two_minutes_in_a_small_body_are_heavy(name: str) -> None:
    """Two minutes of 48 kHz audio at a low bitrate: tens of kB, light by size, heavy to decode. Streamed WebM
    and fragmented MP4 state no duration: their packets are counted."""
    data = _noise(name, 120, "8k")
    assert len(data) < 1_000_000  # under the 2 MiB that once made a body heavy
    assert is_heavy(data)


def test_heavy_from_samples_not_bytes() -> None:
    assert is_heavy(_silence(48_000, 2, 11))  # 1.06 M samples, 2 MB
    assert not is_heavy(_silence(16_000, 1, 60))  # 0.96 M samples, 1.9 MB
    assert is_heavy(_silence(384_000, 8, 1, "FLAC"))  # 3 M samples in a few kB
    assert heavy_samples(HEAVY_SAMPLES) and not heavy_samples(HEAVY_SAMPLES - 1)
    streamed = bytearray(_silence(48_000, 2, 11))
    size = streamed.index(b"data") + 4
    streamed[size : size + 4] = bytes(4)  # a data chunk of length 0, as written to a pipe: the audio runs to the end
    assert is_heavy(bytes(streamed))


@pytest.mark.parametrize(
    "body",
    [b"ffconcat version 1.0\nfile 'samples/yes.wav'\n", b"#EXTM3U\nsamples/yes.wav\n", b"", b"\x1aE\xdf\xa3junk"],
)
def test_what_is_not_audio_is_light(body: bytes) -> None:
    assert not is_heavy(body)
