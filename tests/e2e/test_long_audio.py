"""``--long-audio chunk``: recordings longer than the model's window, classified by sliding windows through a
real tritonserver and gateway, equal to transformers' pipeline run on each window and aggregated."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import TOLERANCE, free_port, make_waveform, running_gateway, wav_bytes
from transformers import pipeline

from export.exporter import ExportOptions, export_model
from local_triton.tritonserver import LocalTriton, Ports

RATE = 16000
# name -> (checkpoint, window s, hop s, clip s): AST's own window (1024 frames = 10.24 s), non-overlapping;
# a waveform model with an explicit 1 s window every 0.4 s, as an ensemble and --single-step.
CASES = {
    "ast_long": ("ast", None, None, 23.0),
    "w2v_long": ("wav2vec2_layer_norm", 1.0, 0.4, 3.3),
    "w2v_long_single_step": ("wav2vec2_layer_norm", 1.0, 0.4, 3.3),
}


@pytest.fixture(scope="module")
def long_gateway(checkpoints: dict[str, Path], tmp_path_factory) -> Iterator[str]:
    repository = tmp_path_factory.mktemp("long") / "repo"
    for name, (checkpoint, window, hop, _) in CASES.items():
        options = ExportOptions(
            name=name,
            long_audio="chunk",
            chunk_seconds=window,
            chunk_hop_seconds=hop,
            single_step=name.endswith("single_step"),
            # the single-step model runs its windows in batches of max_batch_size: 2 makes 4 runs of 7 windows
            max_batch_size=2 if name.endswith("single_step") else 8,
        )
        export_model(str(checkpoints[checkpoint]), repository, options)
    triton = LocalTriton(repository, tmp_path_factory.mktemp("long-run"), Ports(free_port(), free_port(), free_port()))
    with triton, running_gateway(triton.grpc_url) as url:
        yield url


def expected_windows(waveform: np.ndarray, window: int, hop: int) -> list[np.ndarray]:
    """Written out here rather than imported: starts 0, hop, 2 hop, ... and a last window ending with the clip."""
    if len(waveform) <= window:
        return [waveform]
    starts = list(range(0, len(waveform) - window, hop)) + [len(waveform) - window]
    return [waveform[s : s + window] for s in starts]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("function", ["softmax", "sigmoid", "none"])
def test_chunked_scores_equal_the_pipelines_windows_aggregated(long_gateway, checkpoints, name, function) -> None:
    checkpoint, window_s, hop_s, seconds = CASES[name]
    reference = pipeline("audio-classification", model=str(checkpoints[checkpoint]), device="cpu")
    window = round(window_s * RATE) if window_s else (1024 - 1) * 160 + 400
    hop = round(hop_s * RATE) if hop_s else window
    waveform = make_waveform(seconds, seed=21)
    pieces = expected_windows(waveform, window, hop)
    assert len(pieces) >= 3
    per_window = [
        {p["label"]: p["score"] for p in reference(piece, top_k=None, function_to_apply=function)} for piece in pieces
    ]
    labels = list(per_window[0])
    stacked = np.array([[scores[label] for label in labels] for scores in per_window])
    combined = stacked.max(axis=0) if function == "sigmoid" else stacked.mean(axis=0)
    body = {"inputs": base64.b64encode(wav_bytes(waveform)).decode(), "parameters": {"function_to_apply": function}}
    served = httpx.post(f"{long_gateway}/models/{name}", json=body, timeout=120)
    assert served.status_code == 200, served.text
    served_scores = {p["label"]: p["score"] for p in served.json()}
    np.testing.assert_allclose([served_scores[label] for label in labels], combined, atol=TOLERANCE)
    assert [p["score"] for p in served.json()] == sorted(served_scores.values(), reverse=True)


@pytest.mark.parametrize("name", CASES)
def test_a_clip_within_one_window_is_exactly_the_pipeline(long_gateway, checkpoints, name) -> None:
    checkpoint, window_s, _, _ = CASES[name]
    reference = pipeline("audio-classification", model=str(checkpoints[checkpoint]), device="cpu")
    waveform = make_waveform(min(window_s or 10.0, 5.0) * 0.9, seed=22)
    expected = reference(waveform, top_k=None)
    served = httpx.post(f"{long_gateway}/models/{name}", content=wav_bytes(waveform), timeout=60).json()
    assert [p["label"] for p in served] == [p["label"] for p in expected]
    np.testing.assert_allclose([p["score"] for p in served], [p["score"] for p in expected], atol=TOLERANCE)


def test_the_model_list_says_how_long_audio_is_handled(long_gateway) -> None:
    models = {m["name"]: m for m in httpx.get(f"{long_gateway}/models").json()}
    assert models["w2v_long"]["long_audio"]["mode"] == "chunk"
    assert models["w2v_long"]["long_audio"]["window_seconds"] == 1.0
    assert models["w2v_long"]["long_audio"]["hop_seconds"] == 0.4
    assert models["ast_long"]["long_audio"]["window_seconds"] == pytest.approx((1023 * 160 + 400) / RATE)  # 1024 frames


def test_longer_than_max_seconds_is_still_a_400(long_gateway) -> None:
    too_long = wav_bytes(np.zeros(121 * RATE, np.float32), subtype="PCM_16")
    answer = httpx.post(f"{long_gateway}/models/w2v_long", content=too_long, timeout=60)
    assert answer.status_code == 400 and "at most 120 s" in answer.json()["error"]
