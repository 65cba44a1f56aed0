"""A waveform model's longest accepted clip, derived from the memory budget per request."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_checkpoints
import transformers as tf

from export.checkpoint import ExportError
from export.exporter import ExportOptions, export_model
from export.memory_budget import GIB, longest_seconds
from triton_steps.features import ASTFeatures, SeamlessM4TFeatures, Wav2Vec2Features


def test_wav2vec2_base_keeps_two_minutes_within_4_gib() -> None:
    config = tf.Wav2Vec2Config()  # wav2vec2-base: 12 heads, 50 frames/s
    longest = longest_seconds(config, Wav2Vec2Features(), 4 * GIB)
    assert 120 < longest < 140  # 6,688 frames: 8 bytes x 12 heads x frames^2 = 4 GiB


def test_a_fine_grained_encoder_gets_a_short_limit() -> None:
    """The issue's config: strides (5, 2) make 1,600 frames/s; 10 s of it held 5.3 GB in onnxruntime."""
    config = tf.Wav2Vec2Config(num_attention_heads=2, conv_stride=(5, 2), conv_kernel=(10, 3), conv_dim=(16, 16))
    assert longest_seconds(config, Wav2Vec2Features(), 4 * GIB) == pytest.approx(10.2, abs=0.05)
    assert longest_seconds(config, Wav2Vec2Features(), 1 * GIB) == pytest.approx(5.1, abs=0.05)


def test_fixed_length_models_need_no_limit_and_bert_counts_stacked_frames() -> None:
    assert longest_seconds(tf.ASTConfig(), ASTFeatures(), GIB) is None
    config = tf.Wav2Vec2BertConfig(num_attention_heads=16)
    assert longest_seconds(config, SeamlessM4TFeatures(), 4 * GIB) == pytest.approx(115.8, abs=0.05)


@pytest.fixture(scope="module")
def fine_grained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fine")
    tiny_checkpoints.build("wav2vec2-layer-norm", folder)
    config = tf.AutoConfig.from_pretrained(folder)
    config.conv_stride, config.conv_kernel, config.conv_dim = (5, 2), (10, 3), (16, 16)
    config.num_feat_extract_layers = 2
    model = tf.Wav2Vec2ForSequenceClassification(config)
    model.save_pretrained(folder)
    return folder


def test_the_exporter_lowers_max_seconds_to_the_budget(fine_grained: Path, tmp_path: Path) -> None:
    # onnxruntime only: the engine choice would time this model's 1,600 frames/s on a 10 s clip
    options = ExportOptions(name="fine", memory_budget_gib=1.0, engine="onnxruntime")
    result = export_model(str(fine_grained), tmp_path / "repo", options)
    expected = longest_seconds(tf.AutoConfig.from_pretrained(fine_grained), Wav2Vec2Features(), GIB)
    assert expected < 120 and result.metadata.max_seconds == expected
    config = (tmp_path / "repo" / "fine_preprocess" / "config.pbtxt").read_text()
    assert f'string_value: "{expected}"' in config  # what the preprocess step enforces (400 beyond)
    unlimited = export_model(
        str(fine_grained), tmp_path / "repo2", ExportOptions(name="fine", memory_budget_gib=None, engine="onnxruntime")
    )
    assert unlimited.metadata.max_seconds == 120.0


def test_a_chunk_window_over_the_budget_is_refused(fine_grained: Path, tmp_path: Path) -> None:
    options = ExportOptions(name="fine", memory_budget_gib=0.25, long_audio="chunk", chunk_seconds=10.0)
    with pytest.raises(ExportError, match="needs more than the memory budget"):
        export_model(str(fine_grained), tmp_path / "repo", options)
