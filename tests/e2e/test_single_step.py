"""A ``--single-step`` export: one Python model doing what the three-step ensemble does, with the same scores.

Real parts: tiny checkpoints exported with ``single_step`` -> a real tritonserver -> gRPC and the gateway,
against transformers' pipeline on the same waveform.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import assert_client_batches_refused, assert_same, make_waveform, running_gateway, wav_bytes
from transformers import pipeline

from export.exporter import ExportOptions, export_model
from local_triton.tritonserver import LocalTriton, Ports, free_port
from triton_control import AsyncTritonControl, TritonControl, TritonError
from triton_steps.contract import CONFIG_FILE

# A fixed-length spectrogram model, a group-norm waveform model, and Whisper's log-mel front end.
MODELS = ("ast", "hubert", "whisper")


@pytest.fixture(scope="module")
def single_step(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    repository = tmp_path_factory.mktemp("single-step") / "model_repository"
    for name in MODELS:
        export_model(str(checkpoints[name]), repository, ExportOptions(name=name, single_step=True))
    ports = Ports(free_port(), free_port(), free_port())
    with LocalTriton(repository, tmp_path_factory.mktemp("single-step-triton"), ports) as server:
        yield server


def test_the_repository_holds_one_python_model_per_export(single_step: LocalTriton) -> None:
    repository = single_step.repository.path
    assert sorted(p.name for p in repository.iterdir() if p.is_dir()) == sorted(MODELS)
    for name in MODELS:
        assert 'backend: "python"' in (repository / name / CONFIG_FILE).read_text()
    with TritonControl(single_step.grpc_url) as control:
        assert sorted(state.name for state in control.index()) == sorted(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_scores_equal_transformers_pipeline(name: str, checkpoints: dict[str, Path], single_step: LocalTriton) -> None:
    reference = pipeline("audio-classification", model=str(checkpoints[name]), device="cpu")
    waveform = make_waveform()
    audio = wav_bytes(waveform)
    with TritonControl(single_step.grpc_url) as control:
        assert_same(control.classify(name, audio), reference(waveform))
        for function in ("softmax", "sigmoid", "none"):
            served = control.classify(name, audio, function=function)
            assert_same(served, reference(waveform, function_to_apply=function))
        assert_same(control.classify(name, audio, top_k=3), reference(waveform, top_k=3))


def test_bad_requests_fail_alone_in_a_batch(single_step: LocalTriton) -> None:
    """Concurrent requests reach the step together (the dynamic batcher); a bad clip or parameter is its own
    INVALID_ARGUMENT and the good clips beside it are answered."""
    good = wav_bytes(make_waveform(1.0, seed=1))
    with TritonControl(single_step.grpc_url) as control:
        expected = control.classify("hubert", good)

    async def send() -> list:
        async with AsyncTritonControl(single_step.grpc_url) as control:
            calls = [control.classify("hubert", good) for _ in range(6)]
            calls += [control.classify("hubert", b"not audio"), control.classify("hubert", good, top_k=0)]
            return await asyncio.gather(*calls, return_exceptions=True)

    *answers, bad_audio, bad_top_k = asyncio.run(send())
    for answer in answers:
        assert [label for label, _ in answer] == [label for label, _ in expected]
        np.testing.assert_allclose([s for _, s in answer], [s for _, s in expected], atol=1e-6)
    assert isinstance(bad_audio, TritonError) and bad_audio.status == "INVALID_ARGUMENT"
    assert "could not decode the audio" in str(bad_audio)
    assert isinstance(bad_top_k, TritonError) and "top_k must be an integer >= 1" in str(bad_top_k)


def test_the_gateway_serves_it_and_says_so(checkpoints: dict[str, Path], single_step: LocalTriton) -> None:
    waveform = make_waveform(1.0, seed=2)
    reference = pipeline("audio-classification", model=str(checkpoints["ast"]), device="cpu")
    with running_gateway(single_step.grpc_url, default_model="ast") as url:
        listing = {m["id"]: m for m in httpx.get(f"{url}/models", timeout=10).json()}
        assert sorted(listing) == sorted(MODELS)
        assert all(m["ready"] and m["single_step"] for m in listing.values())
        answer = httpx.post(f"{url}/models/ast", content=wav_bytes(waveform), timeout=60)
        assert answer.status_code == 200 and answer.headers["x-compute-type"] == "cpu", answer.text
        assert_same(answer.json(), reference(waveform))


@pytest.mark.parametrize("clips", [2, 8])
def test_a_request_holding_several_clips_is_refused_not_cut_to_one(clips: int, single_step: LocalTriton) -> None:
    assert_client_batches_refused(single_step.grpc_url, "hubert", clips)
