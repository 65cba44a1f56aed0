"""--quantize int8|bf16: the network's MatMul/Gemm become int8, or OpenVINO computes it in bf16; the gate against
fp32 torch passes or refuses the export, and the metadata says so; bf16 is refused at once on a CPU without it.
(Both served end to end: tests/e2e/test_reduced_precision.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CPU_HAS_BF16, NO_BF16_CPU

from export import quantize
from export.checkpoint import ExportError
from export.exporter import ExportOptions, export_model
from triton_steps import engines


def test_fp32_stays_the_default(exported) -> None:
    assert {result.metadata.precision for result in exported.values()} == {"fp32"}
    assert all(result.metadata.quantization is None for result in exported.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"quantize": "int8", "quantized_tolerance": 1e-9}, "drifts too far from fp32"),
        ({"quantize": "int8", "tensorrt": True}, "with --tensorrt export in fp32"),  # refused as options
        ({"quantize": "int4"}, "--quantize must be one of fp32, int8, bf16"),
        ({"quantize": "bf16", "tensorrt": True}, "--quantize bf16 is for CPU serving"),
        ({"quantize": "bf16", "engine": "onnxruntime"}, "--quantize bf16 runs on OpenVINO"),
        pytest.param(
            {"quantize": "bf16", "quantized_tolerance": 1e-9},
            "the bf16 network drifts too far from fp32",
            marks=pytest.mark.skipif(not CPU_HAS_BF16, reason="this CPU has no bf16 instructions"),
        ),
    ],
)
def test_what_reduced_precision_cannot_promise_is_refused(checkpoints, tmp_path: Path, options, message) -> None:
    with pytest.raises(ExportError, match=message):
        export_model(str(checkpoints["hubert"]), tmp_path / "repo", ExportOptions(**options))
    assert not (tmp_path / "repo").exists()


def test_the_gate_clips_cover_lengths_parities_and_kinds() -> None:
    clips = quantize.gate_clips(16000, shortest=400)
    lengths = {len(c) for c in clips}
    assert len(clips) == 48 and {n % 2 for n in lengths} == {0, 1} and len(lengths) == 6


def test_bf16_is_refused_at_once_on_a_cpu_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any checkpoint is read: the gate could not run here (export where you serve)."""
    monkeypatch.setattr(engines, "cpu_capabilities", lambda: NO_BF16_CPU)
    with pytest.raises(ExportError, match="--quantize bf16: bf16 needs a CPU with bf16 instructions"):
        ExportOptions(quantize="bf16")
