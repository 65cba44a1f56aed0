"""``--quantize int8|bf16``: the reduced-precision networks, and the gate they must pass.

int8, two ways, one per engine (``INT8_METHODS``); ``--engine auto`` makes both and keeps the faster of those
that pass the gate:
  onnxruntime  dynamic int8 of the network's MatMul/Gemm (activations quantized on the fly). Only MatMul and
               Gemm: quantizing the convolutions too made wav2vec2 1.6x slower on CPU (../shared/NOTES.md).
  openvino     static int8 by NNCF (post-training, calibrated on clips the gate never sees; transformer
               preset: SmoothQuant, softmax and layer norms left in fp32), written as a QDQ ``model.onnx``
               that OpenVINO's CPU plugin runs on its int8 kernels (onnxruntime runs that graph slower than fp32).
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
import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from export.checkpoint import Checkpoint, ExportError
from triton_steps import engines
from triton_steps.features import FeatureExtractor, ModelInputs, batch
from triton_steps.scores import apply_function

log = logging.getLogger("export")

FP32, INT8, BF16 = engines.FP32, "int8", engines.BF16
PRECISIONS = (FP32, INT8, BF16)
GATE_SECONDS = (1.0, 2.5, 4.0)  # clip lengths checked, each at an even and an odd sample count
CLIPS_PER_KIND = 4  # voice-like clips, and as many noise clips, per length and parity: 48 in all
GATE_SEED, CALIBRATION_SEED = 0, 1  # NNCF calibrates on clips like the gate's, never on the gate's own
CALIBRATION_CLIPS_PER_KIND = 2  # 24 clips: past that NNCF's ranges barely move, and it takes longer
INT8_METHODS = {  # engine -> how its int8 network is made (the metadata's ``quantization.method``)
    engines.ONNXRUNTIME: "dynamic int8 MatMul/Gemm (onnxruntime)",
    engines.OPENVINO: "static int8, NNCF post-training (OpenVINO)",
}
BF16_METHOD = "the fp32 network computed in bf16 (OpenVINO)"


@dataclass(frozen=True)
class QuantizedReport:
    """How the reduced-precision network compares with the fp32 torch model on the gate's clips."""

    clips: int
    top1_agreement: float  # fraction of clips with the same best label
    max_score_diff: float  # largest |reduced - fp32| score, after the model's function_to_apply

    def as_metadata(self, method: str) -> dict[str, str | float | int]:
        """The metadata's ``quantization``: how the network was made (``INT8_METHODS``, ``BF16_METHOD``), and
        the gate's figures."""
        return {
            "method": method,
            "clips": self.clips,
            "top1_agreement": self.top1_agreement,
            "max_score_diff": self.max_score_diff,
        }


def quantize_int8(engine: str, fp32_path: Path, int8_path: Path, extractor: FeatureExtractor, shortest: int) -> None:
    """Write ``engine``'s int8 network (``INT8_METHODS``) made from the fp32 one; the static one is calibrated on
    ``calibration_inputs``."""
    if engine == engines.ONNXRUNTIME:
        quantize_dynamic(fp32_path, int8_path, op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)
    elif engine == engines.OPENVINO:
        import nncf  # 3 s to import, and only this export needs it

        calibration = calibration_inputs(extractor, shortest)
        model = nncf.quantize(
            onnx.load(fp32_path),
            nncf.Dataset(calibration),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calibration),
        )
        onnx.save(model, int8_path)
    else:
        raise ValueError(f"unknown engine {engine!r} (known: {', '.join(INT8_METHODS)})")


def voice_like(samples: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A vowel-like signal: harmonics of a gliding pitch under syllable-rate loudness, plus a little noise."""
    t = np.arange(samples) / rate
    pitch = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t) ** 2
    return (0.2 * voice * envelope + 0.01 * rng.standard_normal(samples)).astype(np.float32)


def gate_clips(rate: int, shortest: int, seed: int = GATE_SEED, per_kind: int = CLIPS_PER_KIND) -> list[np.ndarray]:
    """The clips the gate checks: for each length, a voice-like clip and noise, at both parities."""
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in GATE_SECONDS:
        even = max(shortest, int(seconds * rate)) // 2 * 2
        for samples in (even, even + 1):
            for _ in range(per_kind):
                clips.append(voice_like(samples, rate, rng))
                clips.append((rng.uniform(0.01, 0.3) * rng.standard_normal(samples)).astype(np.float32))
    return clips


def calibration_inputs(extractor: FeatureExtractor, shortest: int) -> list[ModelInputs]:
    """The network inputs NNCF calibrates on: clips of the gate's kinds and lengths, other seeds."""
    clips = gate_clips(extractor.sampling_rate, shortest, CALIBRATION_SEED, CALIBRATION_CLIPS_PER_KIND)
    return [batch([extractor(clip)]) for clip in clips]


@dataclass(frozen=True)
class Gate:
    """The gate's clips as network inputs, and the fp32 torch model's scores for them (computed once, whatever
    the number of candidate networks checked against them)."""

    inputs: list[ModelInputs]
    reference: list[np.ndarray]  # scores, after the model's function_to_apply
    function: str

    @classmethod
    def of(cls, checkpoint: Checkpoint, extractor: FeatureExtractor, shortest: int) -> Gate:
        function = checkpoint.function_to_apply
        inputs, reference = [], []
        for clip in gate_clips(extractor.sampling_rate, shortest):
            feed = batch([extractor(clip)])
            with torch.no_grad():
                logits = checkpoint.model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()[0]
            inputs.append(feed)
            reference.append(apply_function(logits, function))
        return cls(inputs, reference, function)

    def check(
        self, network: engines.Engine, label: str, max_score_diff: float, min_agreement: float
    ) -> QuantizedReport:
        """Compare ``network`` (``label``: its precision and engine) with the fp32 torch model; ``ExportError``
        past either threshold."""
        agree, worst = 0, 0.0
        for feed, reference in zip(self.inputs, self.reference, strict=True):
            scores = apply_function(network.run(feed)[0][0], self.function)
            agree += int(np.argmax(reference) == np.argmax(scores))
            worst = max(worst, float(np.abs(reference - scores).max()))
        report = QuantizedReport(len(self.inputs), agree / len(self.inputs), worst)
        log.info(
            f"{label} gate: top-1 agreement {report.top1_agreement:.1%} on {report.clips} clips, "
            f"max score |diff| {report.max_score_diff:.3g} ({self.function})"
        )
        if report.top1_agreement < min_agreement or report.max_score_diff > max_score_diff:
            raise ExportError(
                f"the {label} network drifts too far from fp32: top-1 agreement {report.top1_agreement:.1%} "
                f"(at least {min_agreement:.1%} needed), max score difference {report.max_score_diff:.3g} "
                f"(at most {max_score_diff:g} allowed); export in fp32, or loosen --quantized-tolerance / "
                "--quantized-min-agreement"
            )
        return report
