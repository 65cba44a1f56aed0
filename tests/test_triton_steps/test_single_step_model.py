"""The ``--single-step`` model (triton_steps.single_step_model) run in process: the requests Triton hands one
``execute`` run the network together where their inputs share shapes, each answered as if it ran alone, and a
bad request fails alone."""

from __future__ import annotations

from pathlib import Path

import fake_pb_utils
import numpy as np
import pytest
from helpers import make_waveform, wav_bytes

from export.exporter import ExportOptions, export_model
from triton_steps import contract


def _audio(seconds: float, seed: int) -> np.ndarray:
    return np.array([[wav_bytes(make_waveform(seconds, seed=seed))]], dtype=np.object_)


@pytest.fixture(scope="module")
def exported(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A waveform model (its inputs' shapes follow the clip's length) exported --single-step."""
    repository = tmp_path_factory.mktemp("single-step-in-process")
    export_model(
        str(checkpoints["hubert"]), repository, ExportOptions(name="m", single_step=True, engine="onnxruntime")
    )
    return repository / "m"


def test_same_length_clips_run_as_one_batch_and_score_as_alone(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pb_utils = fake_pb_utils.install(monkeypatch)
    from triton_steps import single_step_model

    model = single_step_model.TritonPythonModel()
    model.initialize(fake_pb_utils.model_args(exported))
    batches: list[int] = []
    run = model.network.run
    model.network.run = lambda feed: batches.append(len(next(iter(feed.values())))) or run(feed)

    clips = [_audio(1.0, 1), _audio(0.5, 2), _audio(1.0, 3), np.array([[b"not audio"]], dtype=np.object_)]
    clips.append(_audio(1.0, 4))
    requests = [fake_pb_utils.request(**{contract.AUDIO.name: clip}) for clip in clips]
    top_3 = fake_pb_utils.request(**{contract.AUDIO.name: clips[0], contract.TOP_K.name: np.array([[3]], np.int32)})
    bad_top_k = fake_pb_utils.request(**{contract.AUDIO.name: clips[2], contract.TOP_K.name: np.array([[0]], np.int32)})
    together = model.execute([*requests, top_3, bad_top_k])
    assert sorted(batches) == [1, 5]  # the five 1 s clips (two with a top_k) in one run, the 0.5 s clip alone

    batches.clear()
    alone = [model.execute([r])[0] for r in [*requests, top_3]]
    assert batches == [1] * 5  # the undecodable clip never reaches the network
    for index in (0, 1, 2, 4, 5):
        assert together[index].error is None
        assert list(together[index].output(contract.LABELS.name)[0]) == list(
            alone[index].output(contract.LABELS.name)[0]
        )
        np.testing.assert_allclose(
            together[index].output(contract.SCORES.name), alone[index].output(contract.SCORES.name), atol=1e-6
        )
    assert len(together[5].output(contract.SCORES.name)[0]) == 3
    for index, message in ((3, "could not decode the audio"), (6, "top_k must be an integer >= 1")):
        assert together[index].error.code == pb_utils.TritonError.INVALID_ARG
        assert message in str(together[index].error)


def test_a_failed_run_fails_its_own_requests_only(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pb_utils = fake_pb_utils.install(monkeypatch)
    from triton_steps import single_step_model

    model = single_step_model.TritonPythonModel()
    model.initialize(fake_pb_utils.model_args(exported))
    run = model.network.run

    def failing_on_short_clips(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if next(iter(feed.values())).shape[1] < 16000:
            raise RuntimeError("engine broke")
        return run(feed)

    model.network.run = failing_on_short_clips
    requests = [fake_pb_utils.request(**{contract.AUDIO.name: _audio(s, 7)}) for s in (1.0, 0.5, 1.0)]
    first, short, last = model.execute(requests)
    assert first.error is None and last.error is None
    assert short.error.code == pb_utils.TritonError.INTERNAL and "inference failed: engine broke" in str(short.error)
