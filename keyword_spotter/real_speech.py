"""Real recorded speech in the Speech Commands layout, split by speaker.

The layout is the public Speech Commands dataset's (Pete Warden, Google, CC BY 4.0,
http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz): one folder per word, a clip's speaker is
the hash before ``_nohash_`` in its name. Folders named after a label of the 12-class task keep it; any other
word folder counts as ``_unknown_``; ``_background_noise_`` (long recordings) and ``_silence_`` (1 s clips of
the test set) are background noise, used as ``_silence_`` examples and mixed under speech in augmentation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keyword_spotter import LABELS, SAMPLING_RATE
from triton_steps import audio

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_FOLDERS = ("_background_noise_", SILENCE)
VALIDATION_FRACTION = 0.15  # of the speakers: held out of training, the same split in train and validation_set


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    speaker: str  # the file itself for background noise, which has no speaker

    def waveform(self) -> np.ndarray:
        """The clip as float32 mono at 16 kHz, decoded as the served model decodes a request."""
        return audio.load(self.path.read_bytes(), SAMPLING_RATE)


def speaker_of(path: Path) -> str:
    stem = path.stem
    if "_nohash_" not in stem:
        return stem
    return stem.split("_nohash_")[0].rsplit("_", 1)[-1]  # _unknown_ clips are named <word>_<speaker>_nohash_<n>


def find_clips(folder: Path) -> list[Clip]:
    """Every WAV/FLAC clip of a Speech Commands folder, labelled for the 12-class task, in a fixed order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder in the Speech Commands layout")
    clips = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = SILENCE if sub.name in BACKGROUND_FOLDERS else sub.name if sub.name in LABELS else UNKNOWN
        for path in sorted(sub.iterdir()):
            if path.suffix.lower() in (".wav", ".flac"):
                clips.append(Clip(path, label, speaker_of(path)))
    if not clips:
        raise FileNotFoundError(f"{folder}: no .wav or .flac clips in label folders")
    return clips


def _bucket(speaker: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) per speaker (the same on every machine and Python)."""
    digest = hashlib.sha256(f"{seed}:{speaker}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def speaker_split(clips: list[Clip], validation_fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """(training, validation): every speaker's clips on one side only."""
    validation = [c for c in clips if _bucket(c.speaker, seed) < validation_fraction]
    training = [c for c in clips if _bucket(c.speaker, seed) >= validation_fraction]
    return training, validation
