"""The shipped default model, served from the committed repository: accuracy on held-out speech through
the gateway, the sample clips, the README's examples, and re-export equality."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
import soundfile
from conftest import free_port, running_gateway

from export.exporter import ExportOptions, export_model
from export.model_configs import StepNames
from keyword_spotter import LABELS
from keyword_spotter.samples import FORMATS
from keyword_spotter.train import held_out_set
from local_triton.server import LocalTriton, Ports

ROOT = Path(__file__).resolve().parents[2]
NAME = "keyword-spotter"
GATEWAY_IN_README = "http://127.0.0.1:8080"


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The committed model_repository on a real tritonserver, behind a gateway (default settings)."""
    ports = Ports(free_port(), free_port(), free_port())
    triton = LocalTriton(ROOT / "model_repository", tmp_path_factory.mktemp("default"), ports)
    with triton, running_gateway(triton.grpc_url) as url:
        yield url


def test_held_out_accuracy_through_the_served_stack(gateway_url: str) -> None:
    """Voices/variants and speeds/pitches never used in training (the model card's set), >= 95% top-1."""
    _, labels, waves = held_out_set(seed=100, per_word=30)

    def wav(x: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        soundfile.write(buffer, x, 16000, format="WAV", subtype="PCM_16")
        return buffer.getvalue()

    async def classify_all() -> list[str]:
        limit = asyncio.Semaphore(8)
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(audio: bytes) -> str:
                async with limit:
                    answer = await client.post(f"{gateway_url}/", content=audio)
                    answer.raise_for_status()
                    return answer.json()[0]["label"]

            return await asyncio.gather(*(one(wav(x)) for x in waves))

    predicted = asyncio.run(classify_all())
    accuracy = float(np.mean([LABELS[label] == p for label, p in zip(labels, predicted, strict=True)]))
    print(f"held-out espeak-ng accuracy through gateway -> Triton: {accuracy:.3f} on {len(labels)} clips")
    assert len(labels) >= 350
    assert accuracy >= 0.95


@pytest.mark.parametrize("word", list(FORMATS))
def test_each_sample_clip_is_recognised(gateway_url: str, word: str) -> None:
    clip = ROOT / "samples" / FORMATS[word][0]
    answer = httpx.post(f"{gateway_url}/models/{NAME}", content=clip.read_bytes())
    assert answer.status_code == 200
    assert answer.json()[0]["label"] == word


def _readme_examples(kind: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{kind} example\n(.*?)```", text, re.S)


def test_readme_curl_examples(gateway_url: str) -> None:
    raw, json_with_parameters = _readme_examples("bash")
    outputs = []
    for example in (raw, json_with_parameters):
        command = example.replace(GATEWAY_IN_README, gateway_url)
        result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads(result.stdout))
    assert outputs[0][0]["label"] == "yes" and len(outputs[0]) == len(LABELS)
    assert outputs[1][0]["label"] == "no" and len(outputs[1]) == 2
    shown = json.loads((ROOT / "README.md").read_text().split("```json\n")[1].split("```")[0].replace(", ...", ""))
    for quoted, served in zip(shown, outputs[0][: len(shown)], strict=True):  # the README quotes the real answer
        assert quoted["label"] == served["label"] and abs(quoted["score"] - served["score"]) < 1e-4


def test_readme_python_example(gateway_url: str) -> None:
    (example,) = _readme_examples("python")
    code = example.replace(GATEWAY_IN_README, gateway_url)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0].split()[0] == "up" and len([line for line in lines if line]) == 3


def test_committed_repository_is_the_export_of_the_committed_checkpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the source is recorded as given: the same relative path as the Makefile's
    export_model("keyword_spotter/checkpoint", tmp_path, ExportOptions(name=NAME), log=lambda _: None)
    committed = ROOT / "model_repository"

    def files(root: Path, model: str) -> list[Path]:  # as git sees them (Triton leaves __pycache__ behind)
        return sorted(
            p.relative_to(root) for p in (root / model).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )

    for model in StepNames(NAME).all():
        fresh_files, committed_files = files(tmp_path, model), files(committed, model)
        assert fresh_files == committed_files
        for relative in fresh_files:
            if relative.suffix == ".onnx":
                fresh, saved = onnx.load(tmp_path / relative), onnx.load(committed / relative)
                assert [n.op_type for n in fresh.graph.node] == [n.op_type for n in saved.graph.node]
                for a, b in zip(fresh.graph.initializer, saved.graph.initializer, strict=True):
                    np.testing.assert_array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b))
            elif relative.name in ("metadata.json", "config.pbtxt"):
                # library versions are recorded: compare everything else
                strip = re.compile(r'\\?"versions\\?":\s*\{[^}]*\}')
                assert strip.sub("", (tmp_path / relative).read_text()) == strip.sub(
                    "", (committed / relative).read_text()
                )
            else:
                assert (tmp_path / relative).read_bytes() == (committed / relative).read_bytes(), relative
