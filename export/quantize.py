"""``--quantize int8|bf16``: the reduced-precision networks, and the gate they must pass.

int8: dynamic int8 quantization of the network's MatMul/Gemm, run by onnxruntime. Only MatMul and Gemm are
quantized: quantizing the convolutions too made wav2vec2 1.6x slower on CPU (../shared/NOTES.md).
bf16: the same fp32 ``model.onnx``, computed by OpenVINO in bf16 (``triton_steps.engines``), on a CPU with bf16
instructions only.

Neither can match transformers within 1e-4, so both are opt-in and gated on their own terms: on a set of clips
(several lengths, odd and even sample counts, voice-like signals and noise) the network's scores are compared
with the fp32 torch model's, and the export is refused when the top-1 agreement or the largest score
difference is past the thresholds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from export.checkpoint import Checkpoint, ExportError
from triton_steps import engines
from triton_steps.features import FeatureExtractor
from triton_steps.scores import apply_function

log = logging.getLogger("export")

FP32, INT8, BF16 = engines.FP32, "int8", engines.BF16
PRECISIONS = (FP32, INT8, BF16)
GATE_SECONDS = (1.0, 2.5, 4.0)  # clip lengths checked, each at an even and an odd sample count
CLIPS_PER_KIND = 4  # voice-like clips, and as many noise clips, per length and parity: 48 in all


@dataclass(frozen=True)
class QuantizedReport:
    """How the reduced-precision network compares with the fp32 torch model on the gate's clips."""

    clips: int
    top1_agreement: float  # fraction of clips with the same best label
    max_score_diff: float  # largest |reduced - fp32| score, after the model's function_to_apply

    def as_metadata(self) -> dict[str, float | int]:
        return {"clips": self.clips, "top1_agreement": self.top1_agreement, "max_score_diff": self.max_score_diff}


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Write the int8 network (weights int8, activations quantized on the fly) next to the fp32 one."""
    quantize_dynamic(fp32_path, int8_path, op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)


def voice_like(samples: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A vowel-like signal: harmonics of a gliding pitch under syllable-rate loudness, plus a little noise."""
    t = np.arange(samples) / rate
    pitch = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t) ** 2
    return (0.2 * voice * envelope + 0.01 * rng.standard_normal(samples)).astype(np.float32)


def gate_clips(rate: int, shortest: int, seed: int = 0) -> list[np.ndarray]:
    """The clips the gate checks: for each length, a voice-like clip and noise, at both parities."""
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in GATE_SECONDS:
        even = max(shortest, int(seconds * rate)) // 2 * 2
        for samples in (even, even + 1):
            for _ in range(CLIPS_PER_KIND):
                clips.append(voice_like(samples, rate, rng))
                clips.append((rng.uniform(0.01, 0.3) * rng.standard_normal(samples)).astype(np.float32))
    return clips


def check(
    checkpoint: Checkpoint,
    extractor: FeatureExtractor,
    network: engines.Engine,
    precision: str,
    shortest: int,
    max_score_diff: float,
    min_agreement: float,
) -> QuantizedReport:
    """Compare ``network`` (in ``precision``) with the fp32 torch model; ``ExportError`` past either threshold."""
    function = checkpoint.function_to_apply
    agree, worst = 0, 0.0
    clips = gate_clips(extractor.sampling_rate, shortest)
    for clip in clips:
        inputs = {name: value[None] for name, value in extractor(clip).items()}
        with torch.no_grad():
            expected = checkpoint.model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()[0]
        actual = network.run(inputs)[0][0]
        reference, quantized = apply_function(expected, function), apply_function(actual, function)
        agree += int(np.argmax(reference) == np.argmax(quantized))
        worst = max(worst, float(np.abs(reference - quantized).max()))
    report = QuantizedReport(len(clips), agree / len(clips), worst)
    log.info(
        f"{precision} gate: top-1 agreement {report.top1_agreement:.1%} on {report.clips} clips, "
        f"max score |diff| {report.max_score_diff:.3g} ({function})"
    )
    if report.top1_agreement < min_agreement or report.max_score_diff > max_score_diff:
        raise ExportError(
            f"the {precision} network drifts too far from fp32: top-1 agreement {report.top1_agreement:.1%} "
            f"(at least {min_agreement:.1%} needed), max score difference {report.max_score_diff:.3g} "
            f"(at most {max_score_diff:g} allowed); export in fp32, or loosen --quantized-tolerance / "
            "--quantized-min-agreement"
        )
    return report
