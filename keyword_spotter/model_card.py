"""The checkpoint's model card (README.md beside the weights) and confusion matrix, from the training metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from keyword_spotter import LABELS, synthesize

ATTRIBUTION = (
    "Speech Commands v0.02, Pete Warden (Google), https://arxiv.org/abs/1804.03209, "
    "licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/), "
    "from http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
)
CONFUSION_IMAGE = "confusion_matrix.png"

TEMPLATE = """---
license: cc-by-4.0
pipeline_tag: audio-classification
tags: [keyword-spotting, speech-commands, whisper]
datasets: [google/speech_commands]
---

# keyword-spotter (hf-audio-triton's default model)

Recognizes which command a user is giving: the twelve labels of the Speech Commands keyword-spotting
task, `{labels}`. A small `WhisperForAudioClassification` ({parameters:,} parameters: two convolutions
over a 64-bin log-mel spectrogram of 1 s, then {layers} transformer layers over its {steps} steps of 20 ms)
trained from scratch, on CPU, by `python -m keyword_spotter.train --real-speech DIR` (seed {seed},
{minutes:.1f} minutes on 2 cores, as measured by the script, {examples:,} augmented training examples).

Why this shape: with the same data and augmentation, a small `ASTForAudioClassification` (30 epochs, 34
minutes; 571,532 parameters, 48 patches of 16 x 16) reached 83.6% on the same validation speakers and 89.5%
on held-out espeak-ng. Convolving over every 10 ms frame and attending over 20 ms steps keeps the short
cues that tell `on` from `off` or `go` from `no`, which 16-frame patches blur.

## Data and licence

- **Real speech**: {real_clips:,} clips ({real_speakers} speakers' words, and background noise) from
  {attribution}. The recordings used are the 2,684-clip part of the v0.02 *test set* that this project has
  (one folder per label); the speakers of the validation split below ({validation_speakers} speakers and their
  share of the background clips, chosen by a seeded hash of the speaker id) were never trained on. Because
  the weights are trained on CC BY 4.0 data, this checkpoint is distributed under CC BY 4.0 with that
  attribution. The public dataset (105,829 clips, 2,618 speakers) is the place to get more.
- **Synthetic speech**: espeak-ng, the keywords and {unknown} other words for `_unknown_`, every English voice
  except `{held_voice}`, every variant except {held_variants} of the {variants}.
- **Silence**: the training speakers' `_silence_` recordings (real background noise), and synthetic silence,
  white / pink / brown noise and mains hum.
- **Augmentation**: every clip drawn {real_copies} times (real) or {synthetic_copies} times (espeak-ng): speed
  -15..+20 % (tempo and pitch), random placement in a 0.9-1 s clip, reverberation (synthetic rooms, RT60
  0.1-0.7 s), band-limiting (4-11 kHz resampling, high-pass), recorded background noise (or synthetic noise)
  at 3-30 dB SNR, gain -25..0 dB; SpecAugment (frequency and time masks) during training.

## Accuracy

| evaluation | clips | top-1 |
|---|---|---|
| **real speakers never trained on** (Speech Commands validation split) | {validation_clips} | **{validation:.1%}** |
| held-out espeak-ng: voice `{held_voice}` or a held-out variant, held-out speeds and pitches \
| {held_clips} | {held_accuracy:.1%} |
{other_rows}

Per class, real validation speakers:

| {label_header} |
|{label_rule}
| {per_class} |

![confusion matrix of the real validation speakers]({confusion_image})

A committed part of the validation speakers' clips (`tests/data/speech_commands_validation/`) is classified
again through the served stack (gateway -> Triton) by `tests/e2e/test_default_model.py`.

## Limits

- {validation:.0%} top-1 on unseen real speakers is at the low end of what keyword spotters trained on the whole
  public dataset (2,618 speakers) reach, about 91-98%: this one heard {real_speakers} real speakers. Expect
  mistakes, most of all between similar words (`on` / `off`, see the confusion matrix) and on far-field or
  noisy audio.
- The validation split has {validation_speakers} speakers: with so few voices each figure above is uncertain by
  several points, per class more so (20-50 clips a class).
- Whole clips are classified: a clip longer than 1 s is cut to its first second (as transformers' pipeline
  does with this feature extractor); a word after that is missed.
- English single-word commands only; a sentence containing a keyword is out of scope.
"""


def write_confusion(folder: Path, matrix: np.ndarray) -> None:
    """The confusion matrix as a PNG: rows the true label, columns the prediction, row-normalised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    figure, axes = plt.subplots(figsize=(7.5, 6.5))
    axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(LABELS)), LABELS, rotation=60, ha="right")
    axes.set_yticks(range(len(LABELS)), LABELS)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            if matrix[i, j]:
                color = "white" if rates[i, j] > 0.5 else "black"
                axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    axes.set_title(f"real validation speakers: {np.trace(matrix) / matrix.sum():.1%} top-1")
    figure.tight_layout()
    figure.savefig(folder / CONFUSION_IMAGE, dpi=110)
    plt.close(figure)


def write(folder: Path, metrics: dict) -> None:
    settings = metrics["settings"]
    other_rows = "\n".join(
        f"| never-heard synthesizer {name} (the ten keywords) | 10 | {accuracy:.0%} |"
        for name, accuracy in metrics["other_synthesizers_accuracy"].items()
    )
    per_class = metrics["real_validation_per_class"]
    write_confusion(folder, np.array(metrics["real_validation_confusion"]))
    (folder / "README.md").write_text(
        TEMPLATE.format(
            labels="`, `".join(LABELS),
            parameters=metrics["parameters"],
            layers=settings["layers"],
            steps=metrics["encoder_steps"],
            seed=metrics["seed"],
            minutes=metrics["training_seconds"] / 60,
            examples=metrics["training_examples"],
            attribution=ATTRIBUTION,
            real_clips=metrics["real_training_clips"],
            real_speakers=metrics["real_training_speakers"],
            validation_speakers=metrics["real_validation_speakers"],
            validation_clips=metrics["real_validation_clips"],
            validation=metrics["real_validation_accuracy"],
            unknown=len(synthesize.TRAIN_UNKNOWN),
            held_voice=synthesize.HELD_OUT_VOICES[0],
            held_variants=len(synthesize.held_out_variants()),
            variants=len(synthesize.variants()),
            real_copies=settings["real_copies"],
            synthetic_copies=settings["synthetic_copies"],
            held_clips=metrics["held_out_espeak_clips"],
            held_accuracy=metrics["held_out_espeak_accuracy"],
            other_rows=other_rows,
            label_header=" | ".join(f"`{label}`" for label in LABELS),
            label_rule="---|" * len(LABELS),
            per_class=" | ".join(f"{per_class[label]:.0%}" for label in LABELS),
            confusion_image=CONFUSION_IMAGE,
        )
    )


def main() -> None:
    """Rewrite a checkpoint's card and confusion matrix from its metrics.json (no retraining)."""
    parser = argparse.ArgumentParser(prog="python -m keyword_spotter.model_card")
    parser.add_argument("checkpoint", nargs="?", default="keyword_spotter/checkpoint")
    folder = Path(parser.parse_args().checkpoint)
    write(folder, json.loads((folder / "metrics.json").read_text()))


if __name__ == "__main__":
    main()
