"""One model that cannot load beside a good one: Triton starts with the good one, the gateway serves it, and
/ready and GET /models name the failed model with Triton's reason."""

from __future__ import annotations

from pathlib import Path

import httpx
from helpers import free_port, make_waveform, running_gateway, wav_bytes

from export.exporter import ExportOptions, export_model
from local_triton.tritonserver import LocalTriton, Ports

BROKEN_CONFIG = """name: "broken"
backend: "python"
max_batch_size: 0
input { name: "AUDIO" data_type: TYPE_STRING dims: 1 }
output { name: "SCORES" data_type: TYPE_FP32 dims: -1 }
"""
BROKEN_MODEL = """class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("this model cannot load: its weights are missing")
"""


def test_a_model_that_cannot_load_leaves_the_others_served(checkpoints, tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    export_model(str(checkpoints["hubert"]), repository, ExportOptions(name="good"))
    (repository / "broken" / "1").mkdir(parents=True)
    (repository / "broken" / "config.pbtxt").write_text(BROKEN_CONFIG)
    (repository / "broken" / "1" / "model.py").write_text(BROKEN_MODEL)
    triton = LocalTriton(repository, tmp_path / "run", Ports(free_port(), free_port(), free_port()))
    with triton, running_gateway(triton.grpc_url) as gateway:
        answer = httpx.post(f"{gateway}/", content=wav_bytes(make_waveform(1.0)), timeout=60)
        assert answer.status_code == 200 and len(answer.json()) > 1
        ready = httpx.get(f"{gateway}/ready")
        assert ready.status_code == 200 and ready.json()["models"] == ["good"]
        assert "weights are missing" in ready.json()["failed"]["broken"]
        listed = {m["id"]: m for m in httpx.get(f"{gateway}/models").json()}
        assert listed["good"]["ready"] and listed["good"]["error"] is None and listed["good"]["labels"]
        assert not listed["broken"]["ready"] and "weights are missing" in listed["broken"]["error"]
