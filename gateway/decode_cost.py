"""Which requests are heavy to decode, from their audio's real length, before Triton does the work.

Decoding costs per sample (frames x channels), and a small file can hold many: 30 kB of Opus holds two minutes
of 48 kHz audio (0.4 s of CPU to decode and resample), 400 kB of FLAC two minutes of 8 channels at 384 kHz.
Triton's preprocess step runs one request after another on each of its instances, so a few such requests in
flight make every light one wait behind them. The gateway therefore asks the decoder's own demuxer
(``triton_steps.audio.decode_cost``: the header's duration, or the packets counted; no decoding) and sends heavy
requests through their own narrow lane (``Admission.lane``), leaving Triton's other preprocess instances to the
light ones. What the decoder refuses to open (not audio, or a format not read here) costs nothing to refuse: it
is light, and the step answers it (one place says what is wrong with a file, for the gateway and for clients
that call Triton directly).
"""

from __future__ import annotations

from triton_steps.audio import AudioError, decode_cost

# Heavier than this many decoded samples: about 11 s of 48 kHz stereo, 65 s of 16 kHz mono (an AST window of a
# 44.1 kHz stereo recording stays light; two minutes of 48 kHz Opus does not).
HEAVY_SAMPLES = 1 << 20


def heavy_samples(samples: int) -> bool:
    """Whether decoding ``samples`` (frames x channels) is heavy."""
    return samples >= HEAVY_SAMPLES


def is_heavy(audio: bytes) -> bool:
    """Whether decoding ``audio`` costs well beyond an ordinary clip (not, where it cannot be opened at all)."""
    try:
        return heavy_samples(decode_cost(audio, HEAVY_SAMPLES))
    except AudioError:
        return False
