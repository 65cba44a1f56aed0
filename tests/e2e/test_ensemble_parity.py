"""Served scores equal transformers' pipeline("audio-classification"), for every architecture.

Real parts only: tiny checkpoints -> the exporter -> a real tritonserver -> gRPC, against the pipeline
loaded from the same folder and fed the same 16 kHz waveform.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import psutil
import pytest
from helpers import PROBLEM_TYPES, assert_client_batches_refused, assert_same, make_waveform, model_name, wav_bytes
from tiny_checkpoints import ARCHITECTURES
from transformers import pipeline

from stub_health import processes as stub_processes
from triton_control import AsyncTritonControl, TritonControl, TritonError
from triton_steps import engines
from triton_steps.contract import StepNames

ALL_MODELS = [model_name(a) for a in ARCHITECTURES] + list(PROBLEM_TYPES)


def classify(url: str, model: str, audio: bytes, **parameters: object) -> list[tuple[str, float]]:
    with TritonControl(url) as control:
        return control.classify(model, audio, **parameters)


@pytest.fixture(scope="module")
def waveform() -> np.ndarray:
    return make_waveform()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_scores_equal_transformers_pipeline(
    name: str, checkpoints: dict[str, Path], triton, waveform: np.ndarray
) -> None:
    reference = pipeline("audio-classification", model=str(checkpoints[name]), device="cpu")
    audio = wav_bytes(waveform)
    assert_same(classify(triton.grpc_url, name, audio), reference(waveform))
    for function in ("softmax", "sigmoid", "none"):
        served = classify(triton.grpc_url, name, audio, function=function)
        assert_same(served, reference(waveform, function_to_apply=function))
    assert_same(classify(triton.grpc_url, name, audio, top_k=3), reference(waveform, top_k=3))
    assert_same(classify(triton.grpc_url, name, audio, top_k=99), reference(waveform, top_k=99))


def test_default_function_follows_problem_type(exported) -> None:
    assert exported["w2v_multilabel"].metadata.function_to_apply == "sigmoid"
    assert exported["w2v_regression"].metadata.function_to_apply == "none"
    assert exported["ast"].metadata.function_to_apply == "softmax"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"top_k": 0}, "top_k must be an integer >= 1"),
        ({"function": "relu"}, "function_to_apply must be one of softmax, sigmoid, none"),
    ],
)
def test_invalid_parameters_are_invalid_argument(triton, waveform, parameters, message) -> None:
    with pytest.raises(TritonError) as error:
        classify(triton.grpc_url, "hubert", wav_bytes(waveform), **parameters)
    assert error.value.status == "INVALID_ARGUMENT"
    assert message in error.value.message


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (b"", "empty audio"),
        (b"this is not an audio file at all" * 10, "could not decode the audio"),
        (wav_bytes(np.zeros(0, np.float32)), "empty audio"),
        (wav_bytes(np.zeros(100, np.float32)), "too short"),
    ],
    ids=["no-bytes", "not-audio", "no-samples", "too-short"],  # named: a WAV's PEAK chunk holds the time written
)
def test_bad_audio_is_invalid_argument(triton, audio: bytes, message: str) -> None:
    with pytest.raises(TritonError) as error:
        classify(triton.grpc_url, "ast", audio)
    assert error.value.status == "INVALID_ARGUMENT"
    assert message in error.value.message


@pytest.mark.parametrize("clips", [2, 8])
def test_a_request_holding_several_clips_is_refused_not_cut_to_one(clips: int, triton) -> None:
    assert_client_batches_refused(triton.grpc_url, "hubert", clips)


@pytest.mark.parametrize("name", ["ast", "wav2vec2_layer_norm"])
def test_bad_audio_does_not_fail_the_rest_of_its_batch(name: str, triton, waveform: np.ndarray) -> None:
    """Concurrent good and bad requests (the dynamic batcher groups them): each good one answers right."""
    good = [wav_bytes(waveform), wav_bytes(make_waveform(seed=1)), wav_bytes(make_waveform(0.9, seed=2))]
    expected = [classify(triton.grpc_url, name, audio) for audio in good]
    bad = [b"garbage" * 40, b"", wav_bytes(np.zeros(10, np.float32))]
    requests = [(audio, True) for audio in good] * 4 + [(audio, False) for audio in bad] * 4

    async def send_all() -> list[object]:
        async with AsyncTritonControl(triton.grpc_url) as control:
            calls = [control.classify(name, audio) for audio, _ in requests]
            return await asyncio.gather(*calls, return_exceptions=True)

    answers = asyncio.run(send_all())
    for index, ((audio, is_good), answer) in enumerate(zip(requests, answers, strict=True)):
        if is_good:
            assert not isinstance(answer, Exception), answer
            got = answer
            want = expected[good.index(audio)]
            assert [label for label, _ in got] == [label for label, _ in want]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-6)
        else:
            assert isinstance(answer, TritonError), (index, answer)
            assert answer.status == "INVALID_ARGUMENT"


def test_concurrent_long_clips_run_alone_and_short_ones_batched_all_equal_the_pipeline(
    checkpoints: dict[str, Path], triton
) -> None:
    """5 s clips are over the exported network step's batched-example limit (3 s), so the local onnxruntime
    step runs each alone while the 1 s clips in the same executions still batch: every answer is the
    pipeline's."""
    name = "wav2vec2_layer_norm"
    reference = pipeline("audio-classification", model=str(checkpoints[name]), device="cpu")
    waveforms = [make_waveform(5.0, seed=seed) for seed in range(3)] + [make_waveform(1.0, seed=s) for s in (3, 4)]
    requests = waveforms * 3

    async def send_all() -> list[list[tuple[str, float]]]:
        async with AsyncTritonControl(triton.grpc_url) as control:
            return await asyncio.gather(*(control.classify(name, wav_bytes(w)) for w in requests))

    for waveform, served in zip(requests, asyncio.run(send_all()), strict=True):
        assert_same(served, reference(waveform))


def test_each_network_step_runs_the_engine_its_export_chose(exported, triton) -> None:
    """The shared repository's networks were exported for OpenVINO: their stubs load OpenVINO's library, not
    onnxruntime's (so the parity above is OpenVINO's), and GET /models-bound metadata says so."""
    stubs = stub_processes.find(triton.ports.grpc)
    assert stubs is not None
    for name, result in exported.items():
        assert result.metadata.engine == engines.OPENVINO
        prefix = f"{StepNames(name).network}_"
        pids = [pid for pid, instance in stubs.pids.items() if instance.startswith(prefix)]
        libraries = {Path(m.path).name for pid in pids for m in psutil.Process(pid).memory_maps()}
        assert pids and any(library.startswith("libopenvino") for library in libraries), (name, pids)
        assert not any(library.startswith("libonnxruntime") for library in libraries), name
