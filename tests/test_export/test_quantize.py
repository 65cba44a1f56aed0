"""--quantize int8: the network's MatMul/Gemm become int8, the gate against fp32 torch passes or refuses the
export, and the metadata says so."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from export import quantize
from export.checkpoint import ExportError
from export.exporter import ExportOptions, export_model
from triton_steps.contract import METADATA_FILE, NETWORK_FILE
from triton_steps.metadata import ModelMetadata


def test_int8_export_quantizes_matmuls_and_records_its_gate(checkpoints, tmp_path: Path) -> None:
    result = export_model(str(checkpoints["wav2vec2_layer_norm"]), tmp_path, ExportOptions(name="q", quantize="int8"))
    metadata = ModelMetadata.from_json((tmp_path / "q" / METADATA_FILE).read_text())
    assert metadata == result.metadata and metadata.precision == "int8"
    assert metadata.quantization["clips"] == 48 and metadata.quantization["top1_agreement"] >= 0.95
    assert 0 < metadata.quantization["max_score_diff"] <= 0.05
    ops = {node.op_type for node in onnx.load(tmp_path / "q_onnx" / "1" / NETWORK_FILE).graph.node}
    assert "MatMulInteger" in ops and "Conv" in ops  # the convolutions stay fp32


def test_fp32_stays_the_default(exported) -> None:
    assert {result.metadata.precision for result in exported.values()} == {"fp32"}
    assert all(result.metadata.quantization is None for result in exported.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"quantize": "int8", "quantized_tolerance": 1e-9}, "drifts too far from fp32"),
        ({"quantize": "int8", "tensorrt": True}, "with --tensorrt export in fp32"),  # refused as options
        ({"quantize": "int4"}, "--quantize must be one of fp32, int8"),
    ],
)
def test_what_int8_cannot_promise_is_refused(checkpoints, tmp_path: Path, options, message) -> None:
    with pytest.raises(ExportError, match=message):
        export_model(str(checkpoints["hubert"]), tmp_path / "repo", ExportOptions(**options))
    assert not (tmp_path / "repo").exists()


def test_the_gate_clips_cover_lengths_parities_and_kinds() -> None:
    clips = quantize.gate_clips(16000, shortest=400)
    lengths = {len(c) for c in clips}
    assert len(clips) == 48 and {n % 2 for n in lengths} == {0, 1} and len(lengths) == 6
