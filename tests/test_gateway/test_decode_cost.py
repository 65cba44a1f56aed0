"""gateway.decode_cost: heavy from the header's rate x channels, or from the body's size."""

from __future__ import annotations

import io

import numpy as np
import soundfile

from gateway.decode_cost import HEAVY_BODY_BYTES, heavy_rate, is_heavy


def _audio(rate: int, channels: int, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((rate // 10, channels), np.int16), rate, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


def test_heavy_by_rate_times_channels_or_by_size() -> None:
    assert not is_heavy(_audio(16_000, 1))
    assert not is_heavy(_audio(48_000, 2, "FLAC"))  # a real recording's most
    assert is_heavy(_audio(48_000, 4, "FLAC"))
    assert is_heavy(_audio(384_000, 8, "FLAC"))
    assert not is_heavy(b"\x1aE\xdf\xa3 not a header libsndfile reads")  # WebM: judged by size
    assert is_heavy(b"\0" * (HEAVY_BODY_BYTES + 1))


def test_a_known_rate_is_judged_as_its_header_would_be() -> None:
    """What a stream's windows use: mono at the model's rate, without reading the WAV the gateway just wrote."""
    for rate, channels in ((16_000, 1), (96_000, 1), (192_000, 1), (48_000, 2), (48_000, 4)):
        assert heavy_rate(rate, channels) == is_heavy(_audio(rate, channels, "FLAC"))
