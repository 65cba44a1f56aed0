"""Write the committed real-speech validation subset: ``python -m keyword_spotter.validation_set``.

Clips of the validation speakers only (the same seeded speaker split as ``train``), as lossless 16-bit FLAC,
at most ``--per-label`` per label, with the dataset's licence and attribution beside them. The default-model
test classifies them through the served stack.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import soundfile

from keyword_spotter import LABELS, model_card, real_speech

README = """# Speech Commands validation speakers (a subset)

{count} one-second recordings of real people saying the twelve labels of the Speech Commands task, one folder
per label, converted losslessly to 16-bit FLAC. They come from {attribution}: the part of the v0.02 test set
that this project has. Their speakers are the validation split of `python -m keyword_spotter.train`
(fraction {fraction}, seed {seed}): the default model was never trained on them.

Licence: Creative Commons Attribution 4.0 International (CC BY 4.0), see LICENSE. Written by
`python -m keyword_spotter.validation_set`.
"""


def write(real_dir: Path, output: Path, fraction: float, seed: int, per_label: int) -> int:
    clips = real_speech.find_clips(real_dir)
    _, validation = real_speech.speaker_split(clips, fraction, seed)
    shutil.rmtree(output, ignore_errors=True)
    count = 0
    for label in LABELS:
        chosen = sorted(
            (c for c in validation if c.label == label),
            key=lambda c: hashlib.sha256(c.path.name.encode()).hexdigest(),
        )[:per_label]
        (output / label).mkdir(parents=True)
        for clip in chosen:
            samples, rate = soundfile.read(clip.path, dtype="int16")
            soundfile.write(output / label / f"{clip.path.stem}.flac", samples, rate, format="FLAC", subtype="PCM_16")
            count += 1
    (output / "README.md").write_text(
        README.format(count=count, attribution=model_card.ATTRIBUTION, fraction=fraction, seed=seed)
    )
    shutil.copyfile(real_dir / "LICENSE", output / "LICENSE")
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m keyword_spotter.validation_set")
    parser.add_argument("--real-speech", type=Path, required=True, help="the folder train used")
    parser.add_argument("--output", type=Path, default=Path("tests/data/speech_commands_validation"))
    parser.add_argument("--validation-fraction", type=float, default=real_speech.VALIDATION_FRACTION)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-label", type=int, default=28)
    args = parser.parse_args(argv)
    count = write(args.real_speech, args.output, args.validation_fraction, args.seed, args.per_label)
    print(f"{count} clips in {args.output}")


if __name__ == "__main__":
    main()
