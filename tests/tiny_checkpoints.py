"""Tiny random-weight audio-classification checkpoints, one per supported architecture.

The Hub is unreachable from CI, so the tests build each checkpoint from its transformers config and save
it with ``save_pretrained``: the exporter then loads it through the same code path as a Hub download.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers as tf

LABELS = ["yes", "no", "up", "down", "left", "right", "on"]

# Small encoders keep export and serving fast; the convolutional front ends keep their real strides.
_ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)
_WAVEFORM = dict(
    **_ENCODER,
    conv_dim=(16, 16, 16, 16, 16, 16, 16),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    classifier_proj_size=16,
    use_weighted_layer_sum=False,
)


_WHISPER = dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=37, decoder_layers=1)
_WHISPER |= dict(decoder_attention_heads=2, decoder_ffn_dim=37, num_mel_bins=80, classifier_proj_size=16)


_STABLE = dict(feat_extract_norm="layer", do_stable_layer_norm=True)  # layer norm, attention mask
_GROUP = dict(feat_extract_norm="group")


def _waveform_model(config: type, attention_mask: bool, **extra: Any) -> tuple[Callable, type, Callable]:
    """A Wav2Vec2-family entry: the tiny waveform encoder with ``extra`` config values, and the model class
    named after the config's (``XConfig`` -> ``XForSequenceClassification``)."""
    model = getattr(tf, config.__name__.replace("Config", "ForSequenceClassification"))
    return lambda: config(**{**_WAVEFORM, **extra}), model, lambda: _w2v_extractor(attention_mask)


def _w2v_extractor(attention_mask: bool) -> tf.Wav2Vec2FeatureExtractor:
    return tf.Wav2Vec2FeatureExtractor(return_attention_mask=attention_mask, do_normalize=True)


# name -> (config factory, model class, extractor factory)
ARCHITECTURES: dict[str, tuple[Callable[[], Any], type, Callable[[], Any]]] = {
    "ast": (
        lambda: tf.ASTConfig(**_ENCODER, num_mel_bins=128, max_length=1024),
        tf.ASTForAudioClassification,
        lambda: tf.ASTFeatureExtractor(),
    ),
    "wav2vec2-group-norm": _waveform_model(tf.Wav2Vec2Config, False, **_GROUP, do_stable_layer_norm=False),
    "wav2vec2-layer-norm": _waveform_model(tf.Wav2Vec2Config, True, **_STABLE),
    "hubert": _waveform_model(tf.HubertConfig, False, **_GROUP),
    "wavlm": _waveform_model(tf.WavLMConfig, True, **_STABLE, num_buckets=32),
    "data2vec-audio": _waveform_model(tf.Data2VecAudioConfig, True, conv_pos_kernel_size=5, num_conv_pos_embeddings=5),
    "unispeech": _waveform_model(tf.UniSpeechConfig, True, **_STABLE),
    "unispeech-sat": _waveform_model(tf.UniSpeechSatConfig, False, **_GROUP),
    "sew": _waveform_model(tf.SEWConfig, False, squeeze_factor=2, conv_dim=(16,) * 13),
    "sew-d": _waveform_model(
        tf.SEWDConfig,
        False,
        squeeze_factor=2,
        conv_dim=(16,) * 13,
        position_buckets=16,
        max_position_embeddings=64,
        pos_att_type=("p2c", "c2p"),
    ),
    "wav2vec2-conformer-relative": _waveform_model(
        tf.Wav2Vec2ConformerConfig, True, position_embeddings_type="relative", conv_depthwise_kernel_size=7
    ),
    "wav2vec2-conformer-rotary": _waveform_model(
        tf.Wav2Vec2ConformerConfig, True, position_embeddings_type="rotary", conv_depthwise_kernel_size=7
    ),
    "wav2vec2-bert": (
        lambda: tf.Wav2Vec2BertConfig(
            **_ENCODER,
            feature_projection_input_dim=160,
            conv_depthwise_kernel_size=7,
            classifier_proj_size=16,
            output_hidden_size=32,
            position_embeddings_type="relative_key",
            left_max_position_embeddings=16,
            right_max_position_embeddings=4,
        ),
        tf.Wav2Vec2BertForSequenceClassification,
        lambda: tf.SeamlessM4TFeatureExtractor(),
    ),
    "whisper": (
        lambda: tf.WhisperConfig(**_WHISPER, max_source_positions=1500),
        tf.WhisperForAudioClassification,
        lambda: tf.WhisperFeatureExtractor(feature_size=80),
    ),
}


def build(
    architecture: str,
    folder: Path,
    problem_type: str | None = None,
    seed: int = 0,
    labels: list[str] = LABELS,
    sampling_rate: int | None = None,
) -> Path:
    """Save a tiny random checkpoint of ``architecture`` (model + feature extractor) into ``folder``; its
    extractor at ``sampling_rate`` where given (else the architecture's own)."""
    make_config, model_class, make_extractor = ARCHITECTURES[architecture]
    config = make_config()
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    if problem_type is not None:
        config.problem_type = problem_type
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():  # random classifier heads are near-uniform; spread the scores so ranks mean something
        for name, param in model.named_parameters():
            if name.startswith("classifier."):
                param.mul_(5.0)
    model.save_pretrained(folder)
    extractor = make_extractor()
    if sampling_rate is not None:
        extractor.sampling_rate = sampling_rate
    extractor.save_pretrained(folder)
    return folder


HUB_REVISION = "0123456789abcdef0123456789abcdef01234567"


def hub_snapshot(hub_cache: Path, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` in an HF hub cache (``$HF_HOME/hub``) laid out by hand as
    ``snapshot_download`` leaves it (``refs/main`` names the revision): with ``HF_HUB_OFFLINE=1`` the real
    Hub code path reads it."""
    model = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (model / "refs").mkdir(parents=True, exist_ok=True)
    (model / "refs" / "main").write_text(HUB_REVISION)
    return model / "snapshots" / HUB_REVISION
