"""espeak-ng speech for the keyword spotter, with voices, variants and settings split train / held-out.

Held out of training entirely: one English voice, every sixth variant (sorted by name), two speeds and
two pitches, and a separate list of "unknown" words. A held-out utterance uses a held-out voice or
variant and held-out settings, so no held-out combination was ever heard in training.
"""

from __future__ import annotations

import functools
import io
import subprocess
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import soundfile

from keyword_spotter import KEYWORDS, SAMPLING_RATE
from triton_steps.audio import resample

VOICES = ["en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
HELD_OUT_VOICES = ["en-029"]
TRAIN_SPEEDS = [95, 115, 140, 165, 185, 215, 245]
HELD_OUT_SPEEDS = [128, 200]
TRAIN_PITCHES = [5, 20, 35, 50, 65, 80, 95]
HELD_OUT_PITCHES = [28, 58]
# _unknown_: Speech Commands' own auxiliary words plus common English words (none a keyword or a
# near-homophone of one: no "know", "goal", "write", "of", ...). The held-out list is never trained on.
TRAIN_UNKNOWN = (  # noqa: SIM905 - a list literal of 420 words would be unreadable
    "bed bird cat dog eight five four happy house marvin nine one seven sheila six three tree two wow "
    "zero learn follow forward backward visual yet upon dawn lift bright own often top goat yellow note "
    "open close start below under over yesterday never stone gold about after again air all also animal "
    "answer any around ask away back bad ball bank base bear beat because been before begin best better "
    "big black book both box boy bring brother build busy buy call came car care carry center change "
    "child city class clear cold color come common could country cover cross cut dark day deep did "
    "different do doctor does done door draw dream drink drive dry during each early earth easy eat end "
    "enough even evening every eye face fact fall family far farm fast father feel field fight find fine "
    "fire first fish fly food foot form free friend from full game garden gave girl give glass good "
    "great green ground group grow had hair half hand hard have head hear heart heat help here high hill "
    "hold home hope horse hot hour human hundred idea inch island just keep kind king land large last "
    "late laugh lead letter life light like line list little live long look lot love low machine make "
    "man many map mark matter mean measure meet men might mile milk mind minute miss money month moon "
    "more morning most mother mountain move much must name near need new next nice night north nothing "
    "now number ocean old only order other page paint pair paper party pass people person picture piece "
    "place plan plant play point power problem pull push put question quick rain reach read ready real "
    "river road rock room round rule run said same saw say school science sea second see seem sentence "
    "set shape ship shoe short should show side simple sing sister sit size sleep slow small snow some "
    "song soon sound south space speak special spell spring square stand star stay still story street "
    "strong study such summer sun sure swim system talk teacher tell ten test than thank that the their "
    "them then there these thing think this those thought through time today together told took town "
    "travel true try turn under until use very voice wait walk wall want warm wash watch way we weather "
    "week well went were west what wheel when where which while white who whole why wide wild will wind "
    "winter wish with woman wonder wood word work world would year young"
).split()
TRAIN_UNKNOWN = list(dict.fromkeys(TRAIN_UNKNOWN))  # unique, in a fixed order (seeded draws depend on it)
HELD_OUT_UNKNOWN = [
    "red",
    "blue",
    "apple",
    "window",
    "music",
    "table",
    "kitchen",
    "pencil",
    "orange",
    "water",
    "chicken",
    "basket",
]


@functools.cache
def variants() -> tuple[str, ...]:
    """espeak-ng's voice variants (the files of its !v folder), sorted."""
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[4].removeprefix("!v/") for line in listing.splitlines()[1:] if len(line.split()) > 4]
    return tuple(sorted(set(names)))


def held_out_variants() -> list[str]:
    return list(variants()[::6])


@dataclass(frozen=True)
class Utterance:
    text: str
    label: str
    voice: str
    variant: str
    speed: int
    pitch: int


def speak(utterance: Utterance) -> np.ndarray:
    """The utterance as float32 mono at 16 kHz."""
    voice = f"{utterance.voice}+{utterance.variant}" if utterance.variant else utterance.voice
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(utterance.speed), "-p", str(utterance.pitch), "--stdout", utterance.text],
        capture_output=True,
        check=True,
    ).stdout
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    return resample(samples, rate, SAMPLING_RATE)


def speak_all(utterances: Iterable[Utterance], workers: int = 2) -> list[np.ndarray]:
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(speak, utterances, chunksize=32))


def _plan(rng: np.random.Generator, voices, variant_list, speeds, pitches, words, unknown, per_word, per_unknown):
    def pick(text: str, label: str) -> Utterance:
        return Utterance(
            text,
            label,
            str(rng.choice(voices)),
            str(rng.choice(variant_list)),
            int(rng.choice(speeds)),
            int(rng.choice(pitches)),
        )

    plan = [pick(word, word) for word in words for _ in range(per_word)]
    plan += [pick(str(rng.choice(unknown)), "_unknown_") for _ in range(per_unknown)]
    return plan


def training_plan(seed: int, per_word: int, per_unknown: int) -> list[Utterance]:
    """Utterances from training voices x training variants x training settings only."""
    rng = np.random.default_rng(seed)
    held = set(held_out_variants())
    train_variants = [v for v in variants() if v not in held] + [""]  # "" = the voice's own default
    train_voices = [v for v in VOICES if v not in HELD_OUT_VOICES]
    return _plan(
        rng, train_voices, train_variants, TRAIN_SPEEDS, TRAIN_PITCHES, KEYWORDS, TRAIN_UNKNOWN, per_word, per_unknown
    )


def held_out_plan(seed: int, per_word: int, per_unknown: int) -> list[Utterance]:
    """Utterances that each use a held-out voice or a held-out variant, with held-out settings."""
    rng = np.random.default_rng(seed)
    half_a = _plan(
        rng,
        HELD_OUT_VOICES,
        list(variants()) + [""],
        HELD_OUT_SPEEDS,
        HELD_OUT_PITCHES,
        KEYWORDS,
        HELD_OUT_UNKNOWN,
        (per_word + 1) // 2,
        (per_unknown + 1) // 2,
    )
    half_b = _plan(
        rng,
        VOICES,
        held_out_variants(),
        HELD_OUT_SPEEDS,
        HELD_OUT_PITCHES,
        KEYWORDS,
        HELD_OUT_UNKNOWN,
        per_word // 2,
        per_unknown // 2,
    )
    return half_a + half_b


def silence(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Digital silence, or white / pink / brown noise or mains hum, at a random level."""
    n = int(seconds * SAMPLING_RATE)
    kind = rng.integers(5)
    if kind == 0:
        return np.zeros(n, np.float32)
    if kind == 4:
        t = np.arange(n) / SAMPLING_RATE
        x = sum(np.sin(2 * np.pi * 50 * h * t + rng.uniform(0, 6.3)) / h for h in (1, 2, 3))
    else:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLING_RATE), 1.0)
        spectrum /= f ** (0.0, 0.5, 1.0)[kind - 1]
        x = np.fft.irfft(spectrum, n)
    x = x / (np.abs(x).max() + 1e-9)
    return (x * 10 ** rng.uniform(-4, -0.5)).astype(np.float32)
