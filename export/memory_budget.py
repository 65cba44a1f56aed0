"""The longest clip a waveform model may take within a memory budget per request.

Attention grows with the square of the encoder's frame count: a waveform model (Wav2Vec2 and its family,
Wav2Vec2-BERT) holds about ``heads x frames^2`` float32 scores, and their softmax, per attention layer while it
runs. So the budget gives a longest clip: ``frames = sqrt(budget / (8 x heads))`` at the encoder's frame rate
(the sampling rate over the product of the convolution strides; 100 / stride frames per second for
Wav2Vec2-BERT's stacked fbank). Fixed-length models (AST, Whisper) need no such limit.
"""

from __future__ import annotations

import math
from typing import Any

from triton_steps.features import FeatureExtractor, SeamlessM4TFeatures, Wav2Vec2Features

BYTES_PER_SCORE = 8  # a float32 attention score and its softmax, alive together
GIB = 1024**3


def encoder_frames_per_second(config: Any, extractor: FeatureExtractor) -> float | None:
    """Frames the encoder's attention sees per second of audio; None for fixed-length inputs."""
    if isinstance(extractor, Wav2Vec2Features) and getattr(config, "conv_stride", None):
        return extractor.sampling_rate / math.prod(config.conv_stride)
    if isinstance(extractor, SeamlessM4TFeatures):
        return 100.0 / extractor.stride  # 10 ms fbank frames, ``stride`` of them stacked into one
    return None


def longest_seconds(config: Any, extractor: FeatureExtractor, budget_bytes: float) -> float | None:
    """The longest clip (to 0.1 s, rounded down) within ``budget_bytes`` of attention; None: no limit needed."""
    rate = encoder_frames_per_second(config, extractor)
    heads = getattr(config, "num_attention_heads", None)
    if rate is None or not heads:
        return None
    frames = math.sqrt(budget_bytes / (BYTES_PER_SCORE * heads))
    return math.floor(frames / rate * 10) / 10
