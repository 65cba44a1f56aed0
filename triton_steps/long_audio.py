"""Long audio as a model setting (``--long-audio chunk`` at export): sliding windows, one score per clip.

The default stays transformers' behaviour (each model takes, pads or truncates the clip as its pipeline
does). In chunk mode a clip longer than the window is cut into windows of ``window_samples`` every
``hop_samples`` (the last window ends with the clip, so every window is full length and they batch
together); each window is classified as the pipeline classifies a clip, and the windows' scores are
aggregated after ``function_to_apply``: the maximum for ``sigmoid`` (multi-label: a label present anywhere),
the mean otherwise (``softmax``: the average probability; ``none``: the average logit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from triton_steps import contract
from triton_steps.features import (
    KALDI_FRAME,
    KALDI_HOP,
    ASTFeatures,
    FeatureExtractor,
    ModelInputs,
    WhisperFeatures,
)

MODES = ("none", "chunk")
WAVEFORM_WINDOW_S = 10.0  # default window of waveform models, which have no window of their own


@dataclass(frozen=True)
class Chunking:
    window_samples: int
    hop_samples: int


def from_parameters(parameters: dict[str, str]) -> Chunking | None:
    """A step's chunking, as its config's parameters give it (None: the model's own behaviour)."""
    if parameters.get(contract.LONG_AUDIO) != "chunk":
        return None
    return Chunking(int(parameters[contract.WINDOW_SAMPLES]), int(parameters[contract.HOP_SAMPLES]))


def default_window(extractor: FeatureExtractor) -> int:
    """The model's own window, in samples: what its extractor keeps of a clip (AST: ``max_length`` frames,
    10.24 s for the AudioSet checkpoints; Whisper: 30 s), or ``WAVEFORM_WINDOW_S`` for waveform models."""
    if isinstance(extractor, ASTFeatures):
        return (extractor.max_length - 1) * KALDI_HOP + KALDI_FRAME
    if isinstance(extractor, WhisperFeatures):
        return extractor.chunk_length * extractor.sampling_rate
    return int(WAVEFORM_WINDOW_S * extractor.sampling_rate)


def windows(waveform: np.ndarray, chunking: Chunking) -> list[np.ndarray]:
    """The windows of ``waveform``; a clip no longer than one window is its own single window."""
    window, hop = chunking.window_samples, chunking.hop_samples
    if len(waveform) <= window:
        return [waveform]
    starts = list(range(0, len(waveform) - window, hop)) + [len(waveform) - window]
    return [waveform[start : start + window] for start in starts]


def window_batches(
    waveform: np.ndarray, chunking: Chunking, extractor: FeatureExtractor, batch: int
) -> list[list[ModelInputs]]:
    """The model inputs of every window of ``waveform``, in groups of at most ``batch`` (the network's runs)."""
    features = [extractor(window) for window in windows(waveform, chunking)]
    return [features[start : start + batch] for start in range(0, len(features), batch)]


def aggregate(scores: np.ndarray, function_to_apply: str) -> np.ndarray:
    """One score per label from the windows' scores ``(windows, labels)``."""
    return scores.max(axis=0) if function_to_apply == "sigmoid" else scores.mean(axis=0, dtype=np.float32)
