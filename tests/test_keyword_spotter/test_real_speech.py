"""keyword_spotter.real_speech: the Speech Commands layout and the speaker-disjoint split that the committed
checkpoint and its committed validation clips depend on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from keyword_spotter import LABELS, real_speech

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "keyword_spotter" / "checkpoint"
COMMITTED_VALIDATION = ROOT / "tests" / "data" / "speech_commands_validation"


def _write(path: Path, rate: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.zeros((rate // 10, channels), np.float32), rate)


def test_folders_become_the_twelve_labels(tmp_path: Path) -> None:
    _write(tmp_path / "yes" / "0a1b2c3d_nohash_0.wav")
    _write(tmp_path / "marvin" / "9f8e7d6c_nohash_1.wav")
    _write(tmp_path / "_background_noise_" / "running_tap.wav")
    _write(tmp_path / "_silence_" / "17.flac")
    (tmp_path / "yes" / "notes.txt").write_text("not audio")
    clips = real_speech.find_clips(tmp_path)
    assert [(c.path.name, c.label, c.speaker) for c in clips] == [
        ("running_tap.wav", "_silence_", "running_tap"),
        ("17.flac", "_silence_", "17"),
        ("9f8e7d6c_nohash_1.wav", "_unknown_", "9f8e7d6c"),
        ("0a1b2c3d_nohash_0.wav", "yes", "0a1b2c3d"),
    ]


def test_unknown_words_named_by_word_keep_their_speaker() -> None:
    assert real_speech.speaker_of(Path("_unknown_/bed_893705bb_nohash_2.flac")) == "893705bb"
    assert real_speech.speaker_of(Path("go/18f8afd5_nohash_0.flac")) == "18f8afd5"


def test_a_clip_is_read_as_16_khz_mono(tmp_path: Path) -> None:
    _write(tmp_path / "no" / "abc_nohash_0.wav", rate=48000, channels=2)
    (clip,) = real_speech.find_clips(tmp_path)
    assert clip.waveform().shape == (1600,)


def test_a_folder_without_clips_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        real_speech.find_clips(tmp_path / "missing")
    (tmp_path / "yes").mkdir()
    with pytest.raises(FileNotFoundError, match="no .wav or .flac"):
        real_speech.find_clips(tmp_path)


def test_the_split_keeps_each_speaker_on_one_side_and_is_seeded() -> None:
    clips = [real_speech.Clip(Path(f"{i}.wav"), "yes", f"speaker{i % 200}") for i in range(1000)]
    training, validation = real_speech.speaker_split(clips, 0.15, seed=0)
    assert len(training) + len(validation) == len(clips)
    assert not {c.speaker for c in training} & {c.speaker for c in validation}
    assert 0.08 < len({c.speaker for c in validation}) / 200 < 0.22
    assert real_speech.speaker_split(clips, 0.15, seed=0) == (training, validation)
    assert real_speech.speaker_split(clips, 0.15, seed=1)[1] != validation


def test_the_committed_clips_come_from_speakers_the_checkpoint_never_trained_on() -> None:
    """Recomputes the split from the checkpoint's own settings: the served accuracy test is on unseen voices."""
    settings = json.loads((CHECKPOINT / "metrics.json").read_text())["settings"]
    trained_on_none = json.loads((CHECKPOINT / "validation_clips.json").read_text())
    committed = sorted(COMMITTED_VALIDATION.glob("*/*.flac"))
    assert {clip.parent.name for clip in committed} == set(LABELS)
    for clip in committed:
        assert f"{clip.parent.name}/{clip.stem}.wav" in trained_on_none
        probe = real_speech.Clip(clip, clip.parent.name, real_speech.speaker_of(clip))
        training, _ = real_speech.speaker_split([probe], settings["validation_fraction"], settings["seed"])
        assert not training, clip
