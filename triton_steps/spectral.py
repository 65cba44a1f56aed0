"""Windows, mel filter banks and framed power spectra, in numpy.

These mirror ``transformers.audio_utils`` (window_function, mel_filter_bank, spectrogram) operation for
operation, including its float64 arithmetic and its complex64 intermediate, so that the features the
Triton step computes equal transformers' own. The loops of the original are vectorised over frames.
``power_spectrogram_f32`` mirrors ``torch.stft`` instead, for the extractors transformers runs in torch.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

MelScale = str  # "htk", "kaldi" or "slaney"


def window_function(length: int, name: str = "hann", periodic: bool = True) -> np.ndarray:
    """A ``hann``, ``hamming``, ``povey`` or ``boxcar`` window of ``length`` samples (float64)."""
    n = length + 1 if periodic else length
    if name in ("hann", "hann_window"):
        window = np.hanning(n)
    elif name in ("hamming", "hamming_window"):
        window = np.hamming(n)
    elif name == "povey":
        window = np.power(np.hanning(n), 0.85)
    elif name == "boxcar":
        window = np.ones(n)
    else:
        raise ValueError(f"unknown window {name!r}")
    return window[:-1] if periodic else window


def hertz_to_mel(freq: float | np.ndarray, mel_scale: MelScale = "htk") -> float | np.ndarray:
    """Hertz to mels on the HTK, Kaldi or Slaney scale."""
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    if mel_scale == "kaldi":
        return 1127.0 * np.log(1.0 + freq / 700.0)
    if mel_scale != "slaney":
        raise ValueError(f"unknown mel scale {mel_scale!r}")
    freq = np.asarray(freq, dtype=np.float64)
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels = np.where(log_region, 15.0 + np.log(np.maximum(freq, 1e-300) / 1000.0) * (27.0 / np.log(6.4)), mels)
    return mels


def mel_to_hertz(mels: float | np.ndarray, mel_scale: MelScale = "htk") -> float | np.ndarray:
    """Mels to hertz on the HTK, Kaldi or Slaney scale."""
    if mel_scale == "htk":
        return 700.0 * (np.power(10, mels / 2595.0) - 1.0)
    if mel_scale == "kaldi":
        return 700.0 * (np.exp(mels / 1127.0) - 1.0)
    if mel_scale != "slaney":
        raise ValueError(f"unknown mel scale {mel_scale!r}")
    mels = np.asarray(mels, dtype=np.float64)
    freq = 200.0 * mels / 3.0
    return np.where(mels >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels - 15.0)), freq)


def mel_filter_bank(
    num_frequency_bins: int,
    num_mel_filters: int,
    min_frequency: float,
    max_frequency: float,
    sampling_rate: int,
    norm: str | None = None,
    mel_scale: MelScale = "htk",
    triangularize_in_mel_space: bool = False,
) -> np.ndarray:
    """Triangular mel filters, shape ``(num_frequency_bins, num_mel_filters)``, float64."""
    mel_freqs = np.linspace(
        hertz_to_mel(min_frequency, mel_scale), hertz_to_mel(max_frequency, mel_scale), num_mel_filters + 2
    )
    filter_freqs = mel_to_hertz(mel_freqs, mel_scale)
    if triangularize_in_mel_space:
        bin_width = sampling_rate / ((num_frequency_bins - 1) * 2)
        fft_freqs = hertz_to_mel(bin_width * np.arange(num_frequency_bins), mel_scale)
        filter_freqs = mel_freqs
    else:
        fft_freqs = np.linspace(0, sampling_rate // 2, num_frequency_bins)
    diff = np.diff(filter_freqs)
    slopes = filter_freqs[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    filters = np.maximum(np.zeros(1), np.minimum(down, up))
    if norm == "slaney":
        filters *= (2.0 / (filter_freqs[2 : num_mel_filters + 2] - filter_freqs[:num_mel_filters]))[None, :]
    elif norm is not None:
        raise ValueError(f"unknown mel filter norm {norm!r}")
    return filters


def num_frames(num_samples: int, frame_length: int, hop_length: int, center: bool) -> int:
    """How many frames ``power_spectrogram`` yields for ``num_samples`` samples."""
    padded = num_samples + 2 * (frame_length // 2) if center else num_samples
    return int(1 + np.floor((padded - frame_length) / hop_length))


def power_spectrogram(
    waveform: np.ndarray,
    window: np.ndarray,
    hop_length: int,
    fft_length: int,
    center: bool,
    preemphasis: float | None = None,
    remove_dc_offset: bool = False,
) -> np.ndarray:
    """Power spectrum of each frame, shape ``(frames, fft_length // 2 + 1)``, float64.

    Frames are ``len(window)`` samples long. ``center`` reflect-pads half a frame on both sides.
    """
    frame_length = len(window)
    if center:
        waveform = np.pad(waveform, frame_length // 2, mode="reflect")
    waveform = waveform.astype(np.float64)
    count = num_frames(len(waveform), frame_length, hop_length, center=False)
    if count < 1:
        raise ValueError(f"{len(waveform)} samples are fewer than one {frame_length}-sample frame")
    frames = np.lib.stride_tricks.sliding_window_view(waveform, frame_length)[::hop_length][:count].copy()
    if remove_dc_offset:
        frames -= frames.mean(axis=1, keepdims=True)
    if preemphasis is not None:
        frames[:, 1:] -= preemphasis * frames[:, :-1]
        frames[:, 0] *= 1 - preemphasis
    frames *= window.astype(np.float64)
    # transformers keeps the spectrum as complex64 before taking magnitudes: do the same, bit for bit.
    spectrum = np.fft.rfft(frames, n=fft_length, axis=1).astype(np.complex64)
    return np.abs(spectrum, dtype=np.float64) ** 2


def power_spectrogram_f32(waveform: np.ndarray, window: np.ndarray, hop_length: int) -> np.ndarray:
    """``|torch.stft(waveform, len(window), hop_length, window, center=True)|^2`` in float32, shape
    ``(frames, len(window) // 2 + 1)``: the frames windowed and transformed in float32 as torch does (scipy's
    FFT keeps float32, at a quarter of the time of numpy's, which computes in float64)."""
    frame_length = len(window)
    padded = np.pad(np.asarray(waveform, np.float32), frame_length // 2, mode="reflect")
    count = num_frames(len(padded), frame_length, hop_length, center=False)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length][:count]
    spectrum = scipy.fft.rfft(frames * window.astype(np.float32, copy=False), axis=1)
    return (spectrum.real**2 + spectrum.imag**2).astype(np.float32)


def log_mel(power: np.ndarray, mel_filters: np.ndarray, mel_floor: float, log: str) -> np.ndarray:
    """``log(max(mel_floor, filters^T @ power^T))`` as float32, shape ``(mels, frames)``."""
    mel = np.maximum(mel_floor, np.dot(mel_filters.T, power.T))
    if log == "log":
        mel = np.log(mel)
    elif log == "log10":
        mel = np.log10(mel)
    else:
        raise ValueError(f"unknown log {log!r}")
    return np.asarray(mel, np.float32)
