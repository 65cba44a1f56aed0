"""The loader's jobs (loader.jobs) on an HF cache laid out by hand: the queue bound, and an export that fails
in its own process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import tiny_checkpoints

from loader.estimate import ExportTimes
from loader.hub import Refusal
from loader.jobs import Loader
from loader.settings import LoaderSettings
from model_store import location
from triton_steps.contract import ExportState


def _loader(tmp_path: Path, **settings: object) -> tuple[Loader, list[str]]:
    finished: list[str] = []
    repository = location.parse(tmp_path / "model_repository")
    return Loader(
        LoaderSettings(repository=repository, **settings), ExportTimes(), lambda state, _: finished.append(state)
    ), finished


def _build(hub_cache: Path, repo_id: str) -> Path:
    return tiny_checkpoints.build("wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(hub_cache, repo_id))


def test_a_full_queue_answers_503_and_remembers_nothing(offline_hub_cache: Path, tmp_path: Path) -> None:
    _build(offline_hub_cache, "org/ok")
    loader, _ = _loader(tmp_path, max_queue=0)
    with pytest.raises(Refusal) as refusal:
        asyncio.run(loader.request("org/ok"))
    assert refusal.value.status == 503 and "queue is full" in refusal.value.message
    assert "org/ok" not in loader.jobs  # a passing condition: the next request tries again


def test_an_export_that_fails_in_its_process_is_a_remembered_422(offline_hub_cache: Path, tmp_path: Path) -> None:
    """Weights that pass vetting but cannot be loaded: the export process fails, the id is refused after."""
    folder = tiny_checkpoints.build(
        "wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(offline_hub_cache, "org/broken")
    )
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    loader, finished = _loader(tmp_path)

    async def scenario() -> None:
        job = await loader.request("org/broken")
        assert job.state in ("queued", "exporting") and job.estimate_s > 0
        while job.state not in (ExportState.EXPORTED, ExportState.FAILED):
            await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert finished == [ExportState.FAILED]
    with pytest.raises(Refusal) as refusal:
        asyncio.run(loader.request("org/broken"))
    assert refusal.value.status == 422 and "org/broken could not be exported" in refusal.value.message
    assert not (tmp_path / "model_repository" / "published.json").exists()  # nothing half-exported is published
