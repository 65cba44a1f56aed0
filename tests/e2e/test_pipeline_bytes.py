"""The README's promise as a user checks it: for the same file's bytes, the served scores equal
``pipeline("audio-classification")(bytes)`` within 1e-4, over every format, codec, rate and layout of the corpus
and the shipped samples. The pipeline decodes bytes with the ``ffmpeg`` on PATH: here the pinned FFmpeg 7.0.2
(imageio-ffmpeg), the release inside the decoder's PyAV. Both the default model (16 kHz) and an 8 kHz export,
so every file is resampled by one of them."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import imageio_ffmpeg
import pytest
from audio_formats import corpus
from helpers import RATE_8K, TOLERANCE
from transformers import pipeline

from local_triton.tritonserver import LocalTriton

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ffmpeg_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def _worst_difference(url: str, checkpoint: Path, files: dict[str, bytes], function: str | None = None) -> float:
    """The largest score difference between the gateway at ``url`` and the pipeline, over ``files``; every file
    gets the same labels and the same best label from both."""
    reference = pipeline("audio-classification", model=str(checkpoint), device="cpu")
    options = {} if function is None else {"function_to_apply": function}
    worst = 0.0
    with httpx.Client(timeout=60) as client:
        for name, data in files.items():
            answer = client.post(url, content=data, params={"top_k": 100, **options})
            assert answer.status_code == 200, (name, answer.text)
            served = {p["label"]: p["score"] for p in answer.json()}
            expected = reference(data, top_k=100, **options)
            assert served.keys() == {p["label"] for p in expected}, name
            assert max(served, key=served.get) == expected[0]["label"], name
            difference = max(abs(served[p["label"]] - p["score"]) for p in expected)
            assert difference <= TOLERANCE, (name, difference)
            worst = max(worst, difference)
    return worst


def test_the_default_model_scores_every_file_as_the_pipeline(
    default_served: tuple[LocalTriton, str], ffmpeg_on_path: None
) -> None:
    worst = _worst_difference(f"{default_served[1]}/", ROOT / "keyword_spotter" / "checkpoint", corpus())
    print(f"default model: largest difference {worst:.1e} over {len(corpus())} files")


@pytest.mark.parametrize("function", [None, "sigmoid", "none"])
def test_an_8khz_model_scores_every_file_as_the_pipeline(
    gateway: str, checkpoints: dict[str, Path], ffmpeg_on_path: None, function: str | None
) -> None:
    files = corpus() if function is None else dict(list(corpus().items())[::7])
    worst = _worst_difference(f"{gateway}/models/{RATE_8K}", checkpoints[RATE_8K], files, function)
    print(f"8 kHz model ({function or 'default'}): largest difference {worst:.1e} over {len(files)} files")


@pytest.mark.parametrize(
    "body",
    [
        f"ffconcat version 1.0\nfile '{ROOT / 'samples' / 'yes.wav'}'\n".encode(),
        b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n",
    ],
)
def test_what_names_files_or_sockets_is_a_400_at_once(gateway: str, body: bytes) -> None:
    answer = httpx.post(f"{gateway}/", content=body, timeout=5)  # an SDP once held a decoder for 20-30 s
    assert answer.status_code == 400
    assert "not an audio format read here" in answer.json()["error"]
    assert "yes.wav" not in answer.text


def test_models_say_their_decoder(gateway: str) -> None:
    """The 8 kHz export's metadata says its rate, and GET /models which decoder its requests go through."""
    models = {m["id"]: m for m in httpx.get(f"{gateway}/models", timeout=10).json()}
    assert models[RATE_8K]["sampling_rate"] == 8000
    assert models[RATE_8K]["decoder"] == "FFmpeg 7.0.2 (PyAV 13.1.0), as `ffmpeg -i - -ac 1 -ar 8000 -f f32le -`"
