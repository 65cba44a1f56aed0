"""--quantize int8|bf16: the network's MatMul/Gemm become int8 (onnxruntime's dynamic int8, or NNCF's static int8
for OpenVINO), or OpenVINO computes it in bf16; the gate against fp32 torch passes or refuses each candidate, the
export keeps one that passed, and the metadata says which; bf16 is refused at once on a CPU without it.
(Each served end to end: tests/e2e/test_reduced_precision.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import CPU_HAS_BF16, NO_BF16_CPU, engines_timed

from export import engine_choice, quantize
from export.checkpoint import ExportError
from export.exporter import ExportOptions, export_model
from triton_steps import contract, engines


def test_fp32_stays_the_default(exported) -> None:
    assert {result.metadata.precision for result in exported.values()} == {"fp32"}
    assert all(result.metadata.quantization is None for result in exported.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (  # auto: both engines' int8 networks are gated, and the refusal names both
            {"quantize": "int8", "quantized_tolerance": 1e-9},
            r"the int8 \(onnxruntime\) network drifts too far from fp32.*; the int8 \(openvino\) network drifts",
        ),
        ({"quantize": "int8", "tensorrt": True}, "with --tensorrt export in fp32"),  # refused as options
        ({"quantize": "int4"}, "--quantize must be one of fp32, int8, bf16"),
        ({"quantize": "bf16", "tensorrt": True}, "--quantize bf16 is for CPU serving"),
        ({"quantize": "bf16", "engine": "onnxruntime"}, "--quantize bf16 runs on OpenVINO"),
        pytest.param(
            {"quantize": "bf16", "quantized_tolerance": 1e-9},
            r"the bf16 \(openvino\) network drifts too far from fp32",
            marks=pytest.mark.skipif(not CPU_HAS_BF16, reason="this CPU has no bf16 instructions"),
        ),
    ],
)
def test_what_reduced_precision_cannot_promise_is_refused(
    checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options, message
) -> None:
    monkeypatch.setattr(engine_choice, "fastest", engines_timed(bf16_ms=1.0, fp32_ms=2.0))  # bf16 reaches its gate
    with pytest.raises(ExportError, match=message):
        export_model(str(checkpoints["hubert"]), tmp_path / "repo", ExportOptions(**options))
    assert not (tmp_path / "repo").exists()


def test_int8_keeps_an_engine_whose_network_passes_the_gate_when_the_other_fails(
    checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto makes both engines' int8 networks and gates each: with onnxruntime's refused, NNCF's static int8 on
    OpenVINO is served (nothing to time between), and the metadata and the served graph say so."""
    check = quantize.Gate.check
    gated = []

    def onnxruntime_refused(gate, network, label, *limits):
        gated.append(label)
        if label == "int8 (onnxruntime)":
            raise ExportError("the int8 (onnxruntime) network drifts too far from fp32")
        return check(gate, network, label, *limits)

    monkeypatch.setattr(quantize.Gate, "check", onnxruntime_refused)
    result = export_model(str(checkpoints["hubert"]), tmp_path / "repo", ExportOptions(name="m", quantize="int8"))
    assert gated == ["int8 (onnxruntime)", "int8 (openvino)"]
    metadata = result.metadata
    assert (metadata.precision, metadata.engine, metadata.engine_ms) == ("int8", engines.OPENVINO, {})
    assert metadata.quantization["method"] == quantize.INT8_METHODS[engines.OPENVINO]
    assert metadata.quantization["clips"] == 48 and metadata.quantization["top1_agreement"] >= 0.95
    served = onnx.load(tmp_path / "repo" / "m_onnx" / "1" / contract.NETWORK_FILE)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in served.graph.node}


def test_calibration_never_sees_the_gates_clips() -> None:
    gate = quantize.gate_clips(16000, shortest=400)
    calibration = quantize.gate_clips(16000, 400, quantize.CALIBRATION_SEED, quantize.CALIBRATION_CLIPS_PER_KIND)
    assert {len(c) for c in calibration} == {len(c) for c in gate}  # the same lengths and parities
    assert not any(np.array_equal(g, c) for g in gate for c in calibration if len(g) == len(c))


def test_bf16_is_refused_where_this_cpu_computes_it_no_faster_than_fp32(
    checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bf16 gives up exactness for speed alone: measured slower (as on an Intel Xeon with AVX512-BF16 and no AMX),
    it is refused before its gate runs, with both times. Any CPU can run this: the times are given."""
    monkeypatch.setattr(engines, "cpu_capabilities", lambda: [*NO_BF16_CPU, engines.BF16_CAPABILITY])
    monkeypatch.setattr(engine_choice, "fastest", engines_timed(bf16_ms=2.2, fp32_ms=1.4))
    monkeypatch.setattr(quantize.Gate, "of", lambda *_: pytest.fail("the gate ran"))
    slower = r"--quantize bf16 is no faster than fp32 on this CPU \(OpenVINO bf16 2\.2 ms, onnxruntime fp32 1\.4 ms"
    with pytest.raises(ExportError, match=slower):
        export_model(str(checkpoints["hubert"]), tmp_path / "repo", ExportOptions(quantize="bf16"))
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
