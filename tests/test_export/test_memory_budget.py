"""A waveform model's longest accepted clip, derived from the memory budget per request."""

from __future__ import annotations

from pathlib import Path

import pytest
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


# The tiny checkpoints' two heads at 50 frames/s: 4 MiB of attention per request is 10.2 s, 1 MiB 5.1 s (the
# same arithmetic as gigabytes on a real model, with an export that takes a second instead of half a minute).
TINY = "wav2vec2_layer_norm"


def test_the_exporter_lowers_max_seconds_to_the_budget(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    source = checkpoints[TINY]
    options = ExportOptions(name="fine", memory_budget_gib=1 / 256, engine="onnxruntime")
    result = export_model(str(source), tmp_path / "repo", options)
    expected = longest_seconds(tf.AutoConfig.from_pretrained(source), Wav2Vec2Features(), GIB / 256)
    assert expected == pytest.approx(10.2) and result.metadata.max_seconds == expected
    config = (tmp_path / "repo" / "fine_preprocess" / "config.pbtxt").read_text()
    assert f'string_value: "{expected}"' in config  # what the preprocess step enforces (400 beyond)
    unlimited = export_model(
        str(source), tmp_path / "repo2", ExportOptions(name="fine", memory_budget_gib=None, engine="onnxruntime")
    )
    assert unlimited.metadata.max_seconds == 120.0


def test_a_chunk_window_over_the_budget_is_refused(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    options = ExportOptions(name="fine", memory_budget_gib=1 / 1024, long_audio="chunk", chunk_seconds=10.0)
    with pytest.raises(ExportError, match="needs more than the memory budget"):
        export_model(str(checkpoints[TINY]), tmp_path / "repo", options)
