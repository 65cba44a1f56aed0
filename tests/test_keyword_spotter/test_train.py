"""keyword_spotter.train end to end at toy size: real clips in the Speech Commands layout plus espeak-ng in,
a checkpoint that transformers' pipeline loads out, trained on the very features the Triton step computes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import transformers as tf

from keyword_spotter import LABELS, model_card, real_speech, train

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_VALIDATION = ROOT / "tests" / "data" / "speech_commands_validation"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of a 1-layer model on the committed real clips (as a Speech Commands folder) and a few
    espeak-ng utterances."""
    real = tmp_path_factory.mktemp("speech_commands")
    for clip in COMMITTED_VALIDATION.glob("*/*.flac"):
        (real / clip.parent.name).mkdir(exist_ok=True)
        shutil.copyfile(clip, real / clip.parent.name / clip.name)
    output = tmp_path_factory.mktemp("checkpoint")
    train.main(
        [
            "--real-speech",
            str(real),
            "--output",
            str(output),
            "--seed",
            "3",
            "--validation-fraction",
            "0.3",
            "--real-copies",
            "1",
            "--per-word",
            "1",
            "--per-unknown",
            "2",
            "--synthetic-copies",
            "1",
            "--silence",
            "8",
            "--heldout-per-word",
            "1",
            "--hidden-size",
            "32",
            "--layers",
            "1",
            "--epochs",
            "1",
        ]
    )
    return output


def test_the_checkpoint_is_a_transformers_audio_classifier(checkpoint: Path) -> None:
    classifier = tf.pipeline("audio-classification", model=str(checkpoint))
    assert isinstance(classifier.model, tf.WhisperForAudioClassification)
    answer = classifier(np.zeros(16000, np.float32), top_k=None)
    assert sorted(a["label"] for a in answer) == sorted(LABELS)
    assert abs(sum(a["score"] for a in answer) - 1) < 1e-5


def test_training_features_are_what_transformers_computes(checkpoint: Path) -> None:
    """The script trains on triton_steps' features: they must equal the saved extractor's in transformers (its
    Whisper extractor: float32 STFTs in torch and in scipy, rounded differently, as tests/test_triton_steps
    allows)."""
    x, rate = soundfile.read(next(COMMITTED_VALIDATION.glob("yes/*.flac")), dtype="float32")
    reference = tf.AutoFeatureExtractor.from_pretrained(checkpoint)(x, sampling_rate=rate, return_tensors="np")
    np.testing.assert_allclose(train._features(x), reference["input_features"][0], atol=5e-5)


def test_metrics_card_and_split_are_written(checkpoint: Path) -> None:
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    validation = set(json.loads((checkpoint / "validation_clips.json").read_text()))
    assert 0 < metrics["real_validation_clips"] == len(validation)
    assert metrics["real_training_clips"] + len(validation) == len(list(COMMITTED_VALIDATION.glob("*/*.flac")))
    trained_speakers = {
        real_speech.speaker_of(clip)
        for clip in COMMITTED_VALIDATION.glob("*/*.flac")
        if f"{clip.parent.name}/{clip.name}" not in validation and clip.parent.name != real_speech.SILENCE
    }
    assert trained_speakers and not trained_speakers & {real_speech.speaker_of(Path(p)) for p in validation}
    assert np.array(metrics["real_validation_confusion"]).sum() == len(validation)
    assert metrics["settings"]["epochs"] == 1 and metrics["parameters"] < 200_000
    card = (checkpoint / "README.md").read_text()
    assert model_card.ATTRIBUTION in card and "license: cc-by-4.0" in card
    assert (checkpoint / model_card.CONFUSION_IMAGE).stat().st_size > 1000
