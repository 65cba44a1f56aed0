"""The checkpoint's model card (README.md beside the weights), written from the training metrics."""

from __future__ import annotations

from pathlib import Path

from keyword_spotter import LABELS, synthesize

TEMPLATE = """---
license: apache-2.0
pipeline_tag: audio-classification
tags: [keyword-spotting, speech-commands, audio-spectrogram-transformer]
---

# keyword-spotter (hf-audio-triton's default model)

Recognizes which command a user is giving: the twelve labels of the Speech Commands keyword-spotting
task, `{labels}`. A small `ASTForAudioClassification` ({parameters:,} parameters, 4 x 14 patches of a
64-bin log-mel filterbank over at most 1.5 s) trained from scratch, on CPU, by `python -m keyword_spotter.train`
(seed {seed}, {minutes:.1f} minutes on 2 cores, {examples:,} training examples).

## Data

Synthesized with espeak-ng: the keywords, {unknown} other words for `_unknown_`, and silence / white, pink,
brown noise / mains hum for `_silence_`. Training used every English voice except `{held_voice}` and every
variant except {held_variants} of the {variants} espeak-ng variants (plus each voice's default), speeds
{speeds} words/min and pitches {pitches}. Every clip was augmented (3 draws each): speed -15..+20 % (tempo
and pitch), random placement in a 0.8-1.5 s clip, reverberation (synthetic rooms, RT60 0.1-0.7 s),
band-limiting (4-11 kHz resampling, high-pass), noise at 3-30 dB SNR, gain -25..0 dB; SpecAugment
(frequency and time masks) during training.

## Accuracy

| evaluation | clips | top-1 |
|---|---|---|
| held-out espeak-ng: voice `{held_voice}` or a held-out variant, with held-out speeds {held_speeds} \
and pitches {held_pitches}, held-out `_unknown_` words | {held_clips} | {held_accuracy:.1%} |
{other_rows}

The held-out espeak-ng figure is measured again through the served stack (gateway -> Triton) by
`tests/e2e/test_default_model.py`.

## Limits

- Trained on synthetic speech only. Accuracy on real human speech (accents, microphones, far-field) has not
  been measured here and will be lower than the figures above.
- Whole clips are classified: a clip longer than 1.5 s is cut to its first 1.5 s; a word after that is missed.
- English single-word commands only; a sentence containing a keyword is out of scope.
"""


def write(folder: Path, metrics: dict) -> None:
    other = metrics["other_synthesizers_accuracy"]
    other_rows = "\n".join(
        f"| never-heard synthesizer {name} (the ten keywords) | 10 | {accuracy:.0%} |"
        for name, accuracy in other.items()
    )
    (folder / "README.md").write_text(
        TEMPLATE.format(
            labels="`, `".join(LABELS),
            parameters=metrics["parameters"],
            seed=metrics["seed"],
            minutes=metrics["training_seconds"] / 60,
            examples=metrics["training_examples"],
            unknown=len(synthesize.TRAIN_UNKNOWN),
            held_voice=synthesize.HELD_OUT_VOICES[0],
            held_variants=len(synthesize.held_out_variants()),
            variants=len(synthesize.variants()),
            speeds=synthesize.TRAIN_SPEEDS,
            pitches=synthesize.TRAIN_PITCHES,
            held_speeds=synthesize.HELD_OUT_SPEEDS,
            held_pitches=synthesize.HELD_OUT_PITCHES,
            held_clips=metrics["held_out_espeak_clips"],
            held_accuracy=metrics["held_out_espeak_accuracy"],
            other_rows=other_rows,
        )
    )
