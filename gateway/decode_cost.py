"""Which requests are heavy to decode, from their audio's header, before Triton does the work.

Decoding costs per sample (frames x channels), so a small file can be expensive: 400 kB of FLAC holds two
minutes of 8 channels at 384 kHz. Triton's preprocess step runs one request after another on each of its
instances, so a few such requests in flight make every light one wait behind them (a 8 ms clip took 104 ms
beside 8 of them). The gateway therefore reads the header (libsndfile: WAV, FLAC, OGG, MP3, AIFF, CAF; a few
hundred microseconds, no decoding) and sends heavy requests through their own narrow lane
(``Admission.heavy``), leaving Triton's other preprocess instances to the light ones.
"""

from __future__ import annotations

import io

import soundfile

# Heavier than a 48 kHz stereo recording per second of audio, or longer than this many bytes (a minute of
# 16 kHz 16-bit WAV is 1.9 MB; compressed files hold more): heavy. A header libsndfile cannot read (WebM,
# MP4, AMR, ...) is judged by its size alone.
HEAVY_SAMPLES_PER_S = 48_000 * 2
HEAVY_BODY_BYTES = 2 * 1024 * 1024


def heavy_rate(rate: int, channels: int) -> bool:
    """Whether audio of ``rate`` x ``channels`` costs more to decode per second than a 48 kHz stereo recording."""
    return rate * channels > HEAVY_SAMPLES_PER_S


def is_heavy(audio: bytes) -> bool:
    """Whether decoding ``audio`` is likely to cost well beyond an ordinary clip."""
    if len(audio) > HEAVY_BODY_BYTES:
        return True
    try:  # the header alone (soundfile.info also reads the file's log and duration: half as much again)
        with soundfile.SoundFile(io.BytesIO(audio)) as header:
            rate, channels = header.samplerate, header.channels
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        return False  # not a header libsndfile reads: its size decided
    return heavy_rate(rate, channels)
