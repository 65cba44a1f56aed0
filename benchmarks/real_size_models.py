"""Random-weight checkpoints with the real sizes of popular audio classifiers (the Hub is unreachable here;
speed and memory depend on the shapes, not on the weights). Each is saved with ``save_pretrained``, so the
exporter and transformers' pipeline load it exactly as they would a Hub download."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers as tf


@dataclass(frozen=True)
class RealSize:
    description: str  # what it stands for
    config: Callable[[], Any]
    model_class: type
    extractor: Callable[[], Any]
    labels: int
    clip_seconds: tuple[float, ...]  # spectrogram models pad every clip to a fixed length: one size is enough


MODELS: dict[str, RealSize] = {
    "wav2vec2-base": RealSize(
        "facebook/wav2vec2-base (95M) with a 12-label head, as superb/wav2vec2-base-superb-ks",
        lambda: tf.Wav2Vec2Config(),  # the defaults are wav2vec2-base
        tf.Wav2Vec2ForSequenceClassification,
        lambda: tf.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False),
        12,
        (1.0, 10.0, 30.0),
    ),
    "hubert-base": RealSize(
        "facebook/hubert-base-ls960 (95M) with an 8-label emotion head, as superb/hubert-base-superb-er",
        lambda: tf.HubertConfig(),  # the defaults are hubert-base
        tf.HubertForSequenceClassification,
        lambda: tf.Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False),
        8,
        (1.0, 10.0, 30.0),
    ),
    "ast-base": RealSize(
        "MIT/ast-finetuned-audioset-10-10-0.4593 (87M, 527 AudioSet labels)",
        lambda: tf.ASTConfig(),  # the defaults are the AudioSet model: 1024 frames, 128 mel bins
        tf.ASTForAudioClassification,
        lambda: tf.ASTFeatureExtractor(),
        527,
        (10.0,),
    ),
    "whisper-base": RealSize(
        "openai/whisper-base's encoder (20M) with a classification head (WhisperForAudioClassification)",
        lambda: tf.WhisperConfig(
            d_model=512,
            encoder_layers=6,
            encoder_attention_heads=8,
            encoder_ffn_dim=2048,
            decoder_layers=6,
            decoder_attention_heads=8,
            decoder_ffn_dim=2048,
            num_mel_bins=80,
        ),
        tf.WhisperForAudioClassification,
        lambda: tf.WhisperFeatureExtractor(feature_size=80),
        10,
        (10.0,),
    ),
}


def build(name: str, folder: Path, seed: int = 0) -> Path:
    """Save the random-weight checkpoint ``name`` into ``folder`` (kept if it is already there)."""
    spec = MODELS[name]
    if (folder / "config.json").exists():
        return folder
    config = spec.config()
    config.num_labels = spec.labels
    config.id2label = {i: f"label_{i}" for i in range(spec.labels)}
    config.label2id = {label: i for i, label in config.id2label.items()}
    torch.manual_seed(seed)
    spec.model_class(config).eval().save_pretrained(folder)
    spec.extractor().save_pretrained(folder)
    return folder
