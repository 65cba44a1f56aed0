"""Export the network to ONNX and prove it: onnxruntime vs torch, and our features vs transformers'.

An architecture that cannot be exported exactly is refused (``ExportError``), never served wrong.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from export.checkpoint import Checkpoint, ExportError
from triton_steps import engines
from triton_steps.contract import LOGITS, TensorSpec
from triton_steps.features import FeatureExtractor, Wav2Vec2Features, batch

log = logging.getLogger("export")

OPSET = 17
_TRITON_TYPES = {np.dtype(np.float32): "TYPE_FP32", np.dtype(np.int64): "TYPE_INT64"}


@dataclass(frozen=True)
class ParityReport:
    max_logit_diff: float  # onnxruntime vs torch / max(1, max |logit|), over every case checked
    max_feature_diff: float  # triton_steps.features vs the transformers extractor
    cases: list[tuple[int, int]]  # (samples, batch size) checked
    # Every engine checked (onnxruntime first) -> its max relative logit difference; an engine past the
    # tolerance is listed with its difference, and must not be served.
    engine_diffs: dict[str, float] = field(default_factory=dict)


class _LogitsOnly(torch.nn.Module):
    """Positional inputs in, logits out: the signature torch.onnx.export traces."""

    def __init__(self, model: torch.nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, inputs, strict=True))).logits


def _frames(checkpoint: Checkpoint, samples: int) -> int | None:
    """Encoder frames a waveform model makes of ``samples`` samples; None for spectrogram models."""
    lengths = getattr(checkpoint.model, "_get_feat_extract_output_lengths", None)
    if lengths is None or type(checkpoint.extractor).__name__ != "Wav2Vec2FeatureExtractor":
        return None
    return int(lengths(torch.tensor(samples)))


def min_samples(checkpoint: Checkpoint, extractor: FeatureExtractor) -> int:
    """Shortest accepted audio: two encoder frames for waveform models, the extractor's minimum otherwise."""
    if not isinstance(extractor, Wav2Vec2Features) or _frames(checkpoint, 1) is None:
        return extractor.min_samples()
    low, high = 1, 1 << 20
    while low < high:  # smallest n with at least two frames
        mid = (low + high) // 2
        low, high = (mid + 1, high) if _frames(checkpoint, mid) < 2 else (low, mid)
    return low


def input_specs(extractor: FeatureExtractor) -> list[TensorSpec]:
    """The network inputs the extractor makes, with -1 on the axes that follow the audio's length."""
    short = extractor(np.zeros(16000, np.float32) + 0.1)
    long = extractor(np.zeros(24160, np.float32) + 0.1)
    specs = []
    for name, array in short.items():
        dims = tuple(-1 if a != b else a for a, b in zip(array.shape, long[name].shape, strict=True))
        specs.append(TensorSpec(name, _TRITON_TYPES[array.dtype], dims))
    return specs


def _trace_samples(checkpoint: Checkpoint) -> int:
    # SEW / SEW-D trace a graph valid for one parity of the frame count only; an odd count generalises.
    samples = 16000
    for _ in range(8):
        frames = _frames(checkpoint, samples)
        if frames is None or frames % 2 == 1:
            break
        samples += 160
    return samples


def _check_lengths(checkpoint: Checkpoint, shortest: int, variable: bool) -> list[int]:
    """Lengths with both parities of frame count, the shortest accepted, and a long one."""
    if not variable:
        return [shortest, 16000, 40000]
    lengths = [shortest, 16000, 16320, 20000 + 37, 48000 + 77]
    parities = {(_frames(checkpoint, n) or n) % 2 for n in lengths}
    if len(parities) < 2:
        lengths.append(lengths[-1] + 320)
    return lengths


def export(checkpoint: Checkpoint, extractor: FeatureExtractor, path: Path) -> list[TensorSpec]:
    """Write the network as ONNX (dynamic batch axis; dynamic time axis where the input has one)."""
    specs = input_specs(extractor)
    names = [s.name for s in specs]
    rng = np.random.default_rng(0)
    samples = _trace_samples(checkpoint)
    example = batch([extractor(rng.standard_normal(samples).astype(np.float32) * 0.1) for _ in range(2)])
    dynamic_axes = {s.name: {0: "batch", **{i + 1: "frames" for i, d in enumerate(s.dims) if d == -1}} for s in specs}
    dynamic_axes[LOGITS] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python control flow: parity decides
        # eval() on the wrapper too: export restores the wrapper's mode, recursively, when it is done.
        torch.onnx.export(
            _LogitsOnly(checkpoint.model, names).eval(),
            tuple(torch.from_numpy(example[n]) for n in names),
            str(path),
            input_names=names,
            output_names=[LOGITS],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return specs


def verify(
    checkpoint: Checkpoint,
    extractor: FeatureExtractor,
    path: Path,
    specs: list[TensorSpec],
    shortest: int,
    tolerance: float,
    feature_tolerance: float,
    others: tuple[str, ...] = (),
) -> ParityReport:
    """Compare onnxruntime (and the ``others`` engines) with torch on several lengths and batch sizes, and our
    features with the checkpoint's extractor; raise ``ExportError`` when a feature or onnxruntime difference
    exceeds its tolerance (the others' differences are reported, for the caller to decide)."""
    runs = {name: engines.load(name, path) for name in (engines.ONNXRUNTIME, *others)}
    diffs = dict.fromkeys(runs, 0.0)
    rate = extractor.sampling_rate
    variable = any(-1 in s.dims for s in specs)
    cases = [(n, b) for n in _check_lengths(checkpoint, shortest, variable) for b in (1, 3)]
    rng = np.random.default_rng(1)
    max_features = 0.0
    for samples, size in tqdm(cases, desc="parity", unit="case", disable=None):
        waves = [(rng.standard_normal(samples) * 0.1).astype(np.float32) for _ in range(size)]
        ours = [extractor(w) for w in waves]
        reference = checkpoint.extractor(waves[0], sampling_rate=rate, return_tensors="np")
        for name in ours[0]:
            diff = float(np.abs(ours[0][name].astype(np.float64) - reference[name][0]).max())
            max_features = max(max_features, diff)
            if diff > feature_tolerance:
                raise ExportError(
                    f"features {name!r} differ from {type(checkpoint.extractor).__name__} by {diff:.2e} "
                    f"(> {feature_tolerance:g}) on {samples} samples: this extractor setting is not reproduced"
                )
        inputs = batch(ours)
        with torch.no_grad():
            expected = checkpoint.model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
        for name, engine in runs.items():
            actual = engine.run(inputs)[0]
            # Relative to the logits' scale: float32 rounding grows with it (torch's own SDPA and eager
            # attention differ by ~1e-5 of the largest logit on AST).
            diff = float(np.abs(actual - expected).max()) / max(1.0, float(np.abs(expected).max()))
            diff = diff if np.isfinite(diff) else float("inf")
            diffs[name] = max(diffs[name], diff)
            if name == engines.ONNXRUNTIME and diff > tolerance:
                raise ExportError(
                    f"{checkpoint.architecture}: ONNX logits differ from torch by {diff:.2e} of their scale "
                    f"(> {tolerance:g}) on {samples} samples x batch {size}; this architecture does not export "
                    "exactly, refusing it"
                )
    max_logits = diffs[engines.ONNXRUNTIME]
    shown = ", ".join(f"{name} {diff:.2e}" for name, diff in diffs.items())
    log.info(f"parity: logits max relative |diff| {shown}; features max |diff| {max_features:.2e}")
    return ParityReport(max_logits, max_features, cases, diffs)
