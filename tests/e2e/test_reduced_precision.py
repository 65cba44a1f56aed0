"""int8 (each engine's) and bf16 exports served end to end: GET /models says which, and their scores stay within
the export gate's tolerance of transformers' fp32 pipeline (not within 1e-4: that is what opting in gives up)."""

from __future__ import annotations

import httpx
import onnx
import pytest
from google.protobuf import text_format
from helpers import CPU_HAS_BF16, engines_timed, free_port, make_waveform, running_gateway, wav_bytes
from transformers import pipeline
from tritonclient.grpc import model_config_pb2 as mc

from export import engine_choice, quantize
from export.exporter import ExportOptions, export_model
from local_triton.tritonserver import LocalTriton, Ports
from triton_steps import contract, engines
from triton_steps.metadata import ModelMetadata


@pytest.mark.parametrize(
    ("precision", "engine"),
    [
        ("int8", engines.ONNXRUNTIME),  # dynamic int8: MatMulInteger
        ("int8", engines.OPENVINO),  # NNCF's static int8: a QDQ graph, on OpenVINO's int8 kernels
        pytest.param(
            "bf16",
            engines.OPENVINO,
            marks=pytest.mark.skipif(not CPU_HAS_BF16, reason="this CPU has no bf16 instructions"),
        ),
    ],
)
def test_a_reduced_precision_model_is_served_and_says_so(
    checkpoints, tmp_path, monkeypatch: pytest.MonkeyPatch, precision: str, engine: str
) -> None:
    if precision == "bf16":  # whether this CPU computes bf16 faster is test_quantize's, not this test's
        monkeypatch.setattr(engine_choice, "fastest", engines_timed(bf16_ms=1.0, fp32_ms=2.0))
    name = f"{precision}-{engine}"
    options = ExportOptions(name=name, quantize=precision, engine=engine)
    result = export_model(str(checkpoints["wav2vec2_layer_norm"]), tmp_path / "repo", options)
    step = tmp_path / "repo" / contract.StepNames(name).network
    network = text_format.Parse((step / contract.CONFIG_FILE).read_text(), mc.ModelConfig())
    assert network.parameters[contract.ENGINE].string_value == engine
    assert network.parameters[contract.PRECISION].string_value == ("bf16" if precision == "bf16" else "fp32")
    ops = {n.op_type for n in onnx.load(step / "1" / contract.NETWORK_FILE).graph.node}
    int8_ops = {engines.ONNXRUNTIME: "MatMulInteger", engines.OPENVINO: "QuantizeLinear"}
    assert {op for op in int8_ops.values() if op in ops} == ({int8_ops[engine]} if precision == "int8" else set())
    assert "Conv" in ops
    assert ModelMetadata.from_json((tmp_path / "repo" / name / contract.METADATA_FILE).read_text()) == result.metadata
    waveform = make_waveform(1.5, seed=3)
    reference = pipeline("audio-classification", model=str(checkpoints["wav2vec2_layer_norm"]), device="cpu")
    expected = {p["label"]: p["score"] for p in reference(waveform.copy())}
    triton = LocalTriton(tmp_path / "repo", tmp_path / "run", Ports(free_port(), free_port(), free_port()))
    with triton, running_gateway(triton.grpc_url) as gateway:
        (model,) = httpx.get(f"{gateway}/models").json()
        assert model["precision"] == precision and model["engine"] == engine
        answer = httpx.post(f"{gateway}/models/{name}", content=wav_bytes(waveform), timeout=60)
        assert answer.status_code == 200, answer.text
        served = {p["label"]: p["score"] for p in answer.json()}
    assert served.keys() == expected.keys()
    worst = max(abs(served[label] - expected[label]) for label in expected)
    assert 0 < worst <= options.quantized_tolerance, worst
    report = result.metadata.quantization
    assert report["method"] == (quantize.BF16_METHOD if precision == "bf16" else quantize.INT8_METHODS[engine])
    assert report.get("speedup_vs_fp32") == (2.0 if precision == "bf16" else None)
    assert report["clips"] == 48 and report["top1_agreement"] >= options.quantized_min_agreement
    assert 0 < report["max_score_diff"] <= options.quantized_tolerance
