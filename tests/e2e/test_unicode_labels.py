"""Labels that are not ASCII (a Japanese, a French, an emoji label) survive export and serving, with the
Python stubs started under the C locale, whose default encoding is ASCII."""

from __future__ import annotations

import httpx
import pytest
import tiny_checkpoints
from helpers import free_port, make_waveform, running_gateway, wav_bytes

from export.exporter import ExportOptions, export_model
from local_triton.tritonserver import LocalTriton, Ports

LABELS = ["はい", "いいえ", "café", "naïve", "🐦 bird", "plain"]


def test_non_ascii_labels_are_served_as_exported(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.setenv("LANG", "C")
    checkpoint = tiny_checkpoints.build("hubert", tmp_path / "ckpt", labels=LABELS)
    export_model(str(checkpoint), tmp_path / "repo", ExportOptions(name="unicode"))
    triton = LocalTriton(tmp_path / "repo", tmp_path / "run", Ports(free_port(), free_port(), free_port()))
    with triton, running_gateway(triton.grpc_url) as gateway:
        answer = httpx.post(f"{gateway}/models/unicode", content=wav_bytes(make_waveform(1.0)), timeout=60)
        assert answer.status_code == 200, answer.text
        assert sorted(p["label"] for p in answer.json()) == sorted(LABELS)
        (model,) = httpx.get(f"{gateway}/models").json()
        assert model["labels"] == LABELS
