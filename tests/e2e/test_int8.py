"""An int8 export served end to end: GET /models says so, and its scores stay within the export gate's
tolerance of transformers' fp32 pipeline (not within 1e-4: that is what opting in to int8 gives up)."""

from __future__ import annotations

import httpx
from helpers import free_port, make_waveform, running_gateway, wav_bytes
from transformers import pipeline

from export.exporter import ExportOptions, export_model
from local_triton.tritonserver import LocalTriton, Ports


def test_an_int8_model_is_served_and_says_it_is_int8(checkpoints, tmp_path) -> None:
    options = ExportOptions(name="int8", quantize="int8")
    result = export_model(str(checkpoints["wav2vec2_layer_norm"]), tmp_path / "repo", options)
    waveform = make_waveform(1.5, seed=3)
    reference = pipeline("audio-classification", model=str(checkpoints["wav2vec2_layer_norm"]), device="cpu")
    expected = {p["label"]: p["score"] for p in reference(waveform.copy())}
    triton = LocalTriton(tmp_path / "repo", tmp_path / "run", Ports(free_port(), free_port(), free_port()))
    with triton, running_gateway(triton.grpc_url) as gateway:
        (model,) = httpx.get(f"{gateway}/models").json()
        assert model["precision"] == "int8" and model["engine"] == "onnxruntime"  # its int8 graph is onnxruntime's
        answer = httpx.post(f"{gateway}/models/int8", content=wav_bytes(waveform), timeout=60)
        assert answer.status_code == 200, answer.text
        served = {p["label"]: p["score"] for p in answer.json()}
    assert served.keys() == expected.keys()
    worst = max(abs(served[label] - expected[label]) for label in expected)
    assert 0 < worst <= options.quantized_tolerance, worst
    assert result.metadata.quantization["max_score_diff"] <= options.quantized_tolerance
