"""Write ``samples/``: each keyword once, spoken by the held-out espeak-ng voice, in several formats,
sample rates and channel layouts (``python -m keyword_spotter.samples``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile

from keyword_spotter import KEYWORDS, SAMPLING_RATE, synthesize
from triton_steps.audio import resample

# word -> (file name, format, subtype, sample rate, channels)
FORMATS = {
    "yes": ("yes.wav", "WAV", "PCM_16", 16000, 1),
    "no": ("no.flac", "FLAC", "PCM_16", 44100, 1),
    "up": ("up.mp3", "MP3", "MPEG_LAYER_III", 22050, 1),
    "down": ("down.ogg", "OGG", "VORBIS", 48000, 2),
    "left": ("left.wav", "WAV", "PCM_16", 8000, 1),
    "right": ("right.wav", "WAV", "FLOAT", 16000, 1),
    "on": ("on.flac", "FLAC", "PCM_24", 16000, 2),
    "off": ("off.mp3", "MP3", "MPEG_LAYER_III", 44100, 2),
    "stop": ("stop.wav", "WAV", "PCM_24", 48000, 2),
    "go": ("go.ogg", "OGG", "VORBIS", 16000, 1),
}


def write_samples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for word in KEYWORDS:
        name, fmt, subtype, rate, channels = FORMATS[word]
        utterance = synthesize.Utterance(word, word, synthesize.HELD_OUT_VOICES[0], "", 128, 58)
        waveform = resample(synthesize.speak(utterance), SAMPLING_RATE, rate)
        waveform = np.pad(waveform, (rate // 10, rate // 10)) * 0.8
        samples = np.stack([waveform] * channels, axis=1) if channels > 1 else waveform
        soundfile.write(folder / name, samples, rate, format=fmt, subtype=subtype)
        paths.append(folder / name)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m keyword_spotter.samples")
    parser.add_argument("--output", default="samples")
    for path in write_samples(Path(parser.parse_args().output)):
        print(path)


if __name__ == "__main__":
    main()
