"""The checkpoints' own feature extraction, without transformers or torch.

Each class takes the parameters saved in the checkpoint's ``preprocessor_config.json`` and turns one mono
waveform at the extractor's sampling rate into the model inputs that transformers' extractor gives for a
single clip (what ``pipeline("audio-classification")`` feeds the model), without the batch axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from triton_steps import spectral

ModelInputs = dict[str, np.ndarray]


def batch(features: list[ModelInputs]) -> ModelInputs:
    """Clips' network inputs (each as the extractor returns it) stacked into one batch, in order."""
    return {name: np.stack([f[name] for f in features]) for name in features[0]}


# Kaldi-compatible fbank settings shared by the AST and SeamlessM4T (Wav2Vec2-BERT) extractors.
KALDI_FRAME, KALDI_HOP, _KALDI_FFT = 400, 160, 512  # KALDI_FRAME/HOP: long_audio uses them too
_KALDI_MEL_FLOOR = 1.192092955078125e-07


class UnsupportedExtractorError(ValueError):
    """The checkpoint's feature extractor (or one of its settings) has no exact implementation here."""


class FeatureExtractor(Protocol):
    sampling_rate: int

    def __call__(self, waveform: np.ndarray) -> ModelInputs: ...

    def min_samples(self) -> int:
        """Shortest waveform this extractor turns into valid model inputs."""
        ...


def _zero_mean_unit_var(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def _kaldi_mel_filters(num_mel_bins: int, sampling_rate: int) -> np.ndarray:
    return spectral.mel_filter_bank(
        num_frequency_bins=_KALDI_FFT // 2 + 1,
        num_mel_filters=num_mel_bins,
        min_frequency=20,
        max_frequency=sampling_rate // 2,
        sampling_rate=sampling_rate,
        mel_scale="kaldi",
        triangularize_in_mel_space=True,
    )


def _kaldi_fbank(waveform: np.ndarray, window: np.ndarray, mel_filters: np.ndarray) -> np.ndarray:
    """Kaldi-style log-mel filterbank, shape ``(frames, mels)``, float32 (transformers' numpy path)."""
    power = spectral.power_spectrogram(
        waveform, window, KALDI_HOP, _KALDI_FFT, center=False, preemphasis=0.97, remove_dc_offset=True
    )
    return spectral.log_mel(power, mel_filters, _KALDI_MEL_FLOOR, "log").T


@dataclass
class Wav2Vec2Features:
    """``Wav2Vec2FeatureExtractor``: the raw waveform, normalised to zero mean and unit variance."""

    sampling_rate: int = 16000
    do_normalize: bool = True
    return_attention_mask: bool = False
    min_length: int = 1

    def __call__(self, waveform: np.ndarray) -> ModelInputs:
        x = np.asarray(waveform, dtype=np.float32)
        out: ModelInputs = {"input_values": _zero_mean_unit_var(x) if self.do_normalize else x}
        if self.return_attention_mask:
            out["attention_mask"] = np.ones(len(x), dtype=np.int64)
        return out

    def min_samples(self) -> int:
        return self.min_length


@dataclass
class ASTFeatures:
    """``ASTFeatureExtractor``: Kaldi fbank, padded/truncated to ``max_length`` frames, then normalised."""

    sampling_rate: int = 16000
    num_mel_bins: int = 128
    max_length: int = 1024
    do_normalize: bool = True
    mean: float = -4.2677393
    std: float = 4.5689974

    def __post_init__(self) -> None:
        self._filters = _kaldi_mel_filters(self.num_mel_bins, self.sampling_rate)
        self._window = spectral.window_function(KALDI_FRAME, "hann", periodic=False)

    def __call__(self, waveform: np.ndarray) -> ModelInputs:
        fbank = _kaldi_fbank(np.asarray(waveform, dtype=np.float32), self._window, self._filters)
        fbank = fbank[: self.max_length]
        if len(fbank) < self.max_length:
            fbank = np.pad(fbank, ((0, self.max_length - len(fbank)), (0, 0)))
        if self.do_normalize:
            fbank = (fbank - self.mean) / (self.std * 2)
        return {"input_values": fbank.astype(np.float32)}

    def min_samples(self) -> int:
        return KALDI_FRAME


@dataclass
class WhisperFeatures:
    """``WhisperFeatureExtractor``: pad/truncate to ``chunk_length`` s, log10-mel, clamp to 8 below the max. In
    float32, as transformers computes them wherever torch is installed (its pipeline always)."""

    sampling_rate: int = 16000
    feature_size: int = 80
    hop_length: int = 160
    chunk_length: int = 30
    n_fft: int = 400
    padding_value: float = 0.0

    def __post_init__(self) -> None:
        filters = spectral.mel_filter_bank(
            num_frequency_bins=1 + self.n_fft // 2,
            num_mel_filters=self.feature_size,
            min_frequency=0.0,
            max_frequency=8000.0,
            sampling_rate=self.sampling_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        self._filters = np.ascontiguousarray(filters.T, dtype=np.float32)  # (mels, frequency bins)
        self._window = spectral.window_function(self.n_fft, "hann", periodic=True).astype(np.float32)

    def __call__(self, waveform: np.ndarray) -> ModelInputs:
        n_samples = self.chunk_length * self.sampling_rate
        x = np.asarray(waveform, dtype=np.float32)[:n_samples]
        used = len(x)
        # Every clip is padded to 30 s, but a frame that sees only the zero padding has zero power, so its log-mel
        # is log10(1e-10) = -10 exactly: only the frames that reach the audio are computed (a third of the work
        # for a 10 s clip; the same numbers). The slice keeps the right-hand reflection out of those frames.
        frames = spectral.num_frames(n_samples, self.n_fft, self.hop_length, center=True)
        live = frames if self.padding_value else min(frames, (used + self.n_fft // 2) // self.hop_length + 2)
        end = n_samples if live == frames else min(n_samples, live * self.hop_length + self.n_fft)
        x = np.pad(x, (0, end - used), constant_values=self.padding_value) if used < end else x[:end]
        power = spectral.power_spectrogram_f32(x, self._window, self.hop_length)[:live]
        log_spec = np.full((self.feature_size, frames), np.log10(1e-10), dtype=np.float32)
        log_spec[:, :live] = np.log10(np.maximum(self._filters @ power.T, np.float32(1e-10)))
        log_spec = log_spec[:, :-1]
        log_spec = np.maximum(log_spec, log_spec.max() - np.float32(8.0))
        return {"input_features": (log_spec + np.float32(4.0)) / np.float32(4.0)}

    def min_samples(self) -> int:
        return 1


@dataclass
class SeamlessM4TFeatures:
    """``SeamlessM4TFeatureExtractor`` (Wav2Vec2-BERT): Kaldi fbank of 16-bit-scaled audio, per-bin
    normalisation, padded to an even frame count, and ``stride`` frames stacked into one."""

    sampling_rate: int = 16000
    num_mel_bins: int = 80
    stride: int = 2
    padding_value: float = 0.0
    pad_to_multiple_of: int = 2

    def __post_init__(self) -> None:
        self._filters = _kaldi_mel_filters(self.num_mel_bins, self.sampling_rate)
        self._window = spectral.window_function(KALDI_FRAME, "povey", periodic=False)

    def __call__(self, waveform: np.ndarray) -> ModelInputs:
        x = np.asarray(waveform, dtype=np.float32) * (2**15)  # Kaldi works on 16-bit integer scale
        fbank = _kaldi_fbank(x, self._window, self._filters)
        fbank = (fbank - fbank.mean(0)[None]) / np.sqrt(fbank.var(0, ddof=1)[None] + 1e-7)
        frames = len(fbank)
        padded = -(-frames // self.pad_to_multiple_of) * self.pad_to_multiple_of
        mask = np.zeros(padded, dtype=np.int64)
        mask[:frames] = 1
        fbank = np.pad(fbank, ((0, padded - frames), (0, 0)), constant_values=self.padding_value)
        usable = padded - padded % self.stride
        stacked = fbank[:usable].reshape(usable // self.stride, self.num_mel_bins * self.stride)
        mask = mask[:usable][np.arange(usable) % self.stride == 1]
        return {"input_features": stacked.astype(np.float32), "attention_mask": mask}

    def min_samples(self) -> int:
        # Two frames, so that the stacked frame has a real (unmasked) second half.
        return KALDI_FRAME + KALDI_HOP


_EXTRACTORS: dict[str, type] = {
    "Wav2Vec2FeatureExtractor": Wav2Vec2Features,
    "ASTFeatureExtractor": ASTFeatures,
    "WhisperFeatureExtractor": WhisperFeatures,
    "SeamlessM4TFeatureExtractor": SeamlessM4TFeatures,
}


def _refuse(name: str, config: dict[str, Any], key: str, allowed: object) -> None:
    if key in config and config[key] != allowed:
        raise UnsupportedExtractorError(f"{name} with {key}={config[key]!r} is not supported (only {allowed!r})")


def extractor_from_config(config: dict[str, Any], min_length: int = 1) -> FeatureExtractor:
    """Build the extractor described by a ``preprocessor_config.json`` dict.

    ``min_length`` (waveform models only) is the shortest input the network accepts, in samples.
    Raises ``UnsupportedExtractorError`` for an extractor type or setting that cannot be reproduced exactly.
    """
    name = config.get("feature_extractor_type", "")
    cls = _EXTRACTORS.get(name)
    if cls is None:
        raise UnsupportedExtractorError(
            f"feature extractor {name or '(none)'!r} is not supported; supported: {', '.join(_EXTRACTORS)}"
        )
    if name == "WhisperFeatureExtractor":
        _refuse(name, config, "dither", 0.0)  # random noise: no two runs agree
    if name == "ASTFeatureExtractor":
        _refuse(name, config, "feature_size", 1)
    fields = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
    kwargs = {key: value for key, value in config.items() if key in fields}
    if cls is Wav2Vec2Features:
        kwargs["min_length"] = min_length
    return cls(**kwargs)
