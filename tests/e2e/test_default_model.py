"""The shipped default model, served from the committed repository: accuracy on held-out speech through
the gateway, the sample clips, the README's examples, and re-export equality."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
import soundfile
from audio_formats import FORMATS as AUDIO_FORMATS
from audio_formats import ffmpeg_encode
from helpers import TOLERANCE
from test_readme import readme_blocks

from export.exporter import ExportOptions, export_model
from keyword_spotter import LABELS
from keyword_spotter.samples import FORMATS
from keyword_spotter.train import held_out_set
from local_triton.tritonserver import LocalTriton
from triton_steps.contract import StepNames

ROOT = Path(__file__).resolve().parents[2]
NAME = "keyword-spotter"
GATEWAY_IN_README = "http://127.0.0.1:8080"
REAL_VALIDATION = ROOT / "tests" / "data" / "speech_commands_validation"
# The project's target for the default model: >= 90% top-1 on real speakers it never heard, no class under
# 75%, and no worse than the espeak-ng-only model it replaced (96.7%) on held-out synthetic voices, a little
# under which the espeak floor sits. The committed model scores 94.6% here (weakest classes 86%), 96.7%.
REAL_MIN_ACCURACY = 0.90
REAL_MIN_CLASS_ACCURACY = 0.75
ESPEAK_MIN_ACCURACY = 0.96


@pytest.fixture(scope="module")
def served(default_served: tuple[LocalTriton, str]) -> tuple[LocalTriton, str]:
    return default_served


@pytest.fixture(scope="module")
def gateway_url(default_served: tuple[LocalTriton, str]) -> str:
    return default_served[1]


def _classify_all(gateway_url: str, clips: list[bytes]) -> list[str]:
    """The top label the served stack gives each clip (8 requests at a time)."""

    async def classify_all() -> list[str]:
        limit = asyncio.Semaphore(8)
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(audio: bytes) -> str:
                async with limit:
                    answer = await client.post(f"{gateway_url}/", content=audio)
                    answer.raise_for_status()
                    return answer.json()[0]["label"]

            return await asyncio.gather(*(one(clip) for clip in clips))

    return asyncio.run(classify_all())


def test_real_speakers_never_trained_on_through_the_served_stack(gateway_url: str) -> None:
    """Real recordings of the validation speakers (committed FLAC subset): overall and per-class top-1."""
    clips = sorted(REAL_VALIDATION.glob("*/*.flac"))
    truth = [clip.parent.name for clip in clips]
    predicted = _classify_all(gateway_url, [clip.read_bytes() for clip in clips])
    correct = np.array([t == p for t, p in zip(truth, predicted, strict=True)])
    per_class = {label: float(correct[[t == label for t in truth]].mean()) for label in LABELS}
    print(
        f"real validation speakers through gateway -> Triton: {correct.mean():.3f} on {len(clips)} clips; "
        + ", ".join(f"{label} {accuracy:.0%}" for label, accuracy in per_class.items())
    )
    assert len(clips) >= 300 and set(truth) == set(LABELS)
    assert correct.mean() >= REAL_MIN_ACCURACY
    assert min(per_class.values()) >= REAL_MIN_CLASS_ACCURACY, per_class


def _wav(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, x, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_held_out_espeak_accuracy_through_the_served_stack(gateway_url: str) -> None:
    """Voices/variants and speeds/pitches never used in training (the model card's set)."""
    _, labels, waves = held_out_set(seed=100, per_word=30)
    predicted = _classify_all(gateway_url, [_wav(x) for x in waves])
    accuracy = float(np.mean([LABELS[label] == p for label, p in zip(labels, predicted, strict=True)]))
    print(f"held-out espeak-ng accuracy through gateway -> Triton: {accuracy:.3f} on {len(labels)} clips")
    assert len(labels) >= 350
    assert accuracy >= ESPEAK_MIN_ACCURACY


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
        assert quoted["label"] == served["label"] and abs(quoted["score"] - served["score"]) < TOLERANCE


def test_readme_python_example(gateway_url: str) -> None:
    (example,) = _readme_examples("python")
    code = example.replace(GATEWAY_IN_README, gateway_url)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0].split()[0] == "up" and len([line for line in lines if line]) == 3


@pytest.mark.skipif(shutil.which("node") is None, reason="no node (scripts/install-system-packages.sh installs nodejs)")
def test_readme_js_example(gateway_url: str, tmp_path: Path) -> None:
    (example,) = _readme_examples("js")
    script = tmp_path / "example.mjs"
    script.write_text(example.replace(GATEWAY_IN_README, gateway_url))
    result = subprocess.run(["node", str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "label: 'down'" in result.stdout.split("}")[0] and result.stdout.count("label:") == 3, result.stdout


def test_committed_repository_is_the_export_of_the_committed_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """Exported again on the engine the committed export chose (auto's timing is the exporting machine's)."""
    monkeypatch.chdir(ROOT)  # the source is recorded as given: the same relative path as the Makefile's
    committed = ROOT / "model_repository"
    engine = json.loads((committed / NAME / "metadata.json").read_text())["engine"]
    export_model("keyword_spotter/checkpoint", tmp_path, ExportOptions(name=NAME, engine=engine))

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
                # library versions and the engines' measured times are recorded: compare everything else
                strip = re.compile(r'\\?"(?:versions|engine_ms)\\?":\s*\{[^}]*\}')
                assert strip.sub("", (tmp_path / relative).read_text()) == strip.sub(
                    "", (committed / relative).read_text()
                )
            else:
                assert (tmp_path / relative).read_bytes() == (committed / relative).read_bytes(), relative


# A real recording (a validation speaker's "yes", 16-bit FLAC) in every format a user may send.
REAL_CLIP = REAL_VALIDATION / "yes" / "4845bb10_nohash_0.flac"


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_every_format_of_a_real_clip_is_recognised_raw_and_as_json(gateway_url: str, fmt: str) -> None:
    data = ffmpeg_encode(fmt, REAL_CLIP)
    raw = httpx.post(f"{gateway_url}/", content=data, timeout=60)
    body = {"inputs": base64.b64encode(data).decode(), "parameters": {"top_k": 1}}
    as_json = httpx.post(f"{gateway_url}/", json=body, timeout=60)
    assert raw.status_code == as_json.status_code == 200, (raw.text, as_json.text)
    assert raw.json()[0]["label"] == as_json.json()[0]["label"] == "yes", (raw.json()[:2], fmt)


def test_readme_make_perf_command(served: tuple[LocalTriton, str], tmp_path: Path) -> None:
    """The README's perf line exactly, pointed at this test's Triton (its gRPC port) and a scratch folder, with
    shorter measurement windows (the figures are not the point here: that make perf measures each step)."""
    triton, _ = served
    (command,) = [code.strip() for tag, code in readme_blocks() if tag == "perf"]
    assert command.startswith("make perf ")
    venv = Path(sys.prefix)  # the environment running the tests is the one `make install` made
    extra = f" VENV={venv} GRPC_PORT={triton.ports.grpc} WORKDIR={tmp_path} PERF_INTERVAL_MS=500"
    result = subprocess.run(["bash", "-c", command + extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    throughputs = re.findall(r"Concurrency: (\d+), throughput: ([\d.]+) infer/sec", result.stdout)
    assert [c for c, _ in throughputs] == ["1", "2", "3", "4"]
    assert all(float(t) > 0 for _, t in throughputs)
