"""The benchmark's roofline: a clip's work counted as the network does it (attention included), and the ceiling
it sets against the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import transformers as tf

from benchmarks import roofline
from tests import tiny_checkpoints


def test_a_clips_work_counts_every_matrix_product_of_the_network_attention_included(tmp_path: Path) -> None:
    """AST's work, written out from its config: the patch embedding, four linear maps and the MLP per token and
    layer, the two attention products over every pair of tokens, and the head. torch's counter misses fused
    attention (SDPA) on the CPU: without the eager attention the count falls short by the T^2 terms."""
    checkpoint = tiny_checkpoints.build("ast", tmp_path / "ast")
    config = tf.ASTConfig.from_pretrained(checkpoint)
    h, inner, layers, patch = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.patch_size
    frequencies = (config.num_mel_bins - patch) // config.frequency_stride + 1
    times = (config.max_length - patch) // config.time_stride + 1
    patches = frequencies * times
    tokens = patches + 2  # the class and distillation tokens
    per_layer = 2 * tokens * (4 * h * h + 2 * h * inner) + 2 * 2 * tokens * tokens * h
    expected = 2 * patches * h * patch * patch + layers * per_layer + 2 * h * config.num_labels

    assert roofline.gflop_per_clip(checkpoint, 10.0) * 1e9 == pytest.approx(expected, rel=1e-9)


def test_the_ceiling_is_the_peak_over_the_pipelines_rate_of_work() -> None:
    figures = roofline.figures(gflop=10.0, peak_gflops=100.0, pipeline=5.0, forward=8.0, served=9.0)

    assert figures["pipeline_of_peak"] == pytest.approx(0.5)
    assert figures["forward_of_peak"] == pytest.approx(0.8)
    assert figures["served_of_peak"] == pytest.approx(0.9)
    assert figures["ceiling_vs_pipeline"] == pytest.approx(2.0)


def test_a_waveform_models_work_grows_faster_than_its_clip_by_attention(tmp_path: Path) -> None:
    """wav2vec2's positional convolution is weight-normed (a parametrization torch's counter must get through);
    its convolutions grow with the clip, its attention with the clip's square."""
    checkpoint = tiny_checkpoints.build("wav2vec2-group-norm", tmp_path / "wav2vec2")

    one, two = (roofline.gflop_per_clip(checkpoint, seconds) for seconds in (1.0, 2.0))

    assert 2 * one < two < 2.2 * one
