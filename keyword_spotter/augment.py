"""Augmentations that take espeak's clean voices towards real recordings (numpy + soxr only)."""

from __future__ import annotations

import numpy as np

from keyword_spotter import SAMPLING_RATE
from triton_steps.audio import resample


def speed(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tempo and pitch together, by -15..+20% (as a different vocal tract and speaking rate)."""
    factor = rng.uniform(0.85, 1.2)
    return resample(x, int(SAMPLING_RATE * factor), SAMPLING_RATE)


def band_limit(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Telephone-like or muffled: resample down and back up, sometimes remove the lows."""
    rate = int(rng.choice([4000, 6000, 8000, 11025]))
    y = resample(resample(x, SAMPLING_RATE, rate), rate, SAMPLING_RATE)[: len(x)]
    if rng.random() < 0.5:  # first-order high-pass, cutoff 100-400 Hz
        alpha = np.exp(-2 * np.pi * rng.uniform(100, 400) / SAMPLING_RATE)
        y = np.concatenate([[y[0]], y[1:] - alpha * y[:-1]]).astype(np.float32)
    return y


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: exponentially decaying noise, RT60 0.1-0.7 s, mixed with the dry signal."""
    rt60 = rng.uniform(0.1, 0.7)
    n = int(rt60 * SAMPLING_RATE)
    t = np.arange(n) / SAMPLING_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0
    ir /= np.sqrt((ir**2).sum())
    size = len(x) + n - 1
    wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    mix = rng.uniform(0.3, 1.0)
    return ((1 - mix) * x + mix * wet).astype(np.float32)


def crop(background: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample stretch of a background recording (repeated if it is shorter)."""
    if len(background) < length:
        background = np.tile(background, length // len(background) + 1)
    start = rng.integers(len(background) - length + 1)
    return background[start : start + length]


def noise(x: np.ndarray, rng: np.random.Generator, background: np.ndarray | None = None) -> np.ndarray:
    """White, pink or brown noise (or a given background) at an SNR of 3-30 dB."""
    if background is None:
        spectrum = np.fft.rfft(rng.standard_normal(len(x)))
        f = np.maximum(np.fft.rfftfreq(len(x), 1 / SAMPLING_RATE), 1.0)
        background = np.fft.irfft(spectrum / f ** rng.choice([0.0, 0.5, 1.0]), len(x))
    signal_power = np.mean(x**2) + 1e-10
    noise_power = np.mean(background**2) + 1e-10
    snr_db = rng.uniform(3, 30)
    return (x + background * np.sqrt(signal_power / noise_power / 10 ** (snr_db / 10))).astype(np.float32)


def place(x: np.ndarray, rng: np.random.Generator, min_s: float = 0.8, max_s: float = 1.5) -> np.ndarray:
    """Put the utterance at a random offset in a clip of random length (cut if it is longer)."""
    length = int(rng.uniform(min_s, max_s) * SAMPLING_RATE)
    if len(x) >= length:
        start = rng.integers(len(x) - length + 1)
        return x[start : start + length].copy()
    out = np.zeros(length, np.float32)
    start = rng.integers(length - len(x) + 1)
    out[start : start + len(x)] = x
    return out


def augment(
    x: np.ndarray,
    rng: np.random.Generator,
    backgrounds: list[np.ndarray] | None = None,
    min_s: float = 0.8,
    max_s: float = 1.5,
) -> np.ndarray:
    """One random draw of every augmentation, each with its own probability.

    With ``backgrounds`` (real recorded noise), most noisy draws mix in one of them rather than synthetic noise.
    """
    if rng.random() < 0.5:
        x = speed(x, rng)
    x = place(x, rng, min_s, max_s)
    if rng.random() < 0.3:
        x = reverb(x, rng)
    if rng.random() < 0.3:
        x = band_limit(x, rng)
    if rng.random() < 0.6:
        recorded = backgrounds and rng.random() < 0.7
        x = noise(x, rng, crop(backgrounds[rng.integers(len(backgrounds))], len(x), rng) if recorded else None)
    peak = np.abs(x).max() + 1e-9
    gain = 10 ** (rng.uniform(-25, 0) / 20) / peak
    return np.clip(x * gain, -1, 1).astype(np.float32)
