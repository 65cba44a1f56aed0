"""triton_steps.features equals transformers' own feature extractors (the pipeline's reference)."""

from __future__ import annotations

import numpy as np
import pytest
import transformers as tf
from helpers import make_waveform

from triton_steps.features import UnsupportedExtractorError, extractor_from_config

EXTRACTORS = {
    "ast-default": (tf.ASTFeatureExtractor, {}),
    "ast-small": (tf.ASTFeatureExtractor, {"num_mel_bins": 64, "max_length": 300, "mean": 1.0, "std": 2.0}),
    "ast-no-normalize": (tf.ASTFeatureExtractor, {"do_normalize": False}),
    "wav2vec2": (tf.Wav2Vec2FeatureExtractor, {}),
    "wav2vec2-mask": (tf.Wav2Vec2FeatureExtractor, {"return_attention_mask": True}),
    "wav2vec2-raw": (tf.Wav2Vec2FeatureExtractor, {"do_normalize": False}),
    "whisper-80": (tf.WhisperFeatureExtractor, {"feature_size": 80}),
    "whisper-128": (tf.WhisperFeatureExtractor, {"feature_size": 128}),
    "seamless-m4t": (tf.SeamlessM4TFeatureExtractor, {}),
}
# Whisper: transformers computes the STFT with torch in float32 when torch is installed, we with scipy in
# float32: two float32 FFTs, rounded differently (up to ~1e-5 on real speech's quiet bins).
TOLERANCE = {"whisper-80": 5e-5, "whisper-128": 5e-5}


@pytest.mark.parametrize("name", EXTRACTORS)
@pytest.mark.parametrize("samples", [560, 16000, 16161, 35000 + 7, 500_000])
def test_features_equal_transformers(name: str, samples: int) -> None:
    cls, kwargs = EXTRACTORS[name]
    reference = cls(**kwargs)
    ours = extractor_from_config(reference.to_dict())
    waveform = make_waveform(samples / 16000, seed=samples)[:samples]
    expected = reference(waveform, sampling_rate=16000, return_tensors="np")
    actual = ours(waveform)
    assert set(actual) == {key for key in expected if key in actual}
    for key, value in actual.items():
        assert value.shape == expected[key][0].shape, key
        np.testing.assert_allclose(value, expected[key][0], atol=TOLERANCE.get(name, 1e-5), rtol=0)


def test_unknown_extractor_is_refused_with_the_supported_list() -> None:
    with pytest.raises(UnsupportedExtractorError, match="ClapFeatureExtractor.*supported: .*ASTFeatureExtractor"):
        extractor_from_config({"feature_extractor_type": "ClapFeatureExtractor"})


def test_random_dither_is_refused() -> None:
    config = tf.WhisperFeatureExtractor(dither=0.5).to_dict()
    with pytest.raises(UnsupportedExtractorError, match="dither"):
        extractor_from_config(config)


@pytest.mark.parametrize("samples", [1, 161, 401, 160_037, 479_799, 479_800, 480_000])
def test_whisper_computes_only_the_frames_that_reach_the_audio_and_still_equals_transformers(samples: int) -> None:
    """The frames of the zero padding to 30 s are filled in, not computed: a frame at the audio's end that
    were taken for padding would be -10 (log10 of the floor) here and the audio's level in transformers."""
    reference = tf.WhisperFeatureExtractor()
    waveform = make_waveform(samples / 16000 + 0.01, seed=samples)[:samples]
    expected = reference(waveform, sampling_rate=16000, return_tensors="np")["input_features"][0]
    actual = extractor_from_config(reference.to_dict())(waveform)["input_features"]
    np.testing.assert_allclose(actual, expected, atol=TOLERANCE["whisper-80"], rtol=0)
