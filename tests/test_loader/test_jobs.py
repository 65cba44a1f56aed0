"""The loader's jobs (loader.jobs) on an HF cache laid out by hand: the queue bound, and an export that fails
in its own process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiny_checkpoints

from loader.estimate import ExportTimes
from loader.hub import Refusal
from loader.jobs import Loader, export_lock
from loader.settings import LoaderSettings
from model_store import location
from triton_steps.contract import ExportState


def _loader(tmp_path: Path, priors: dict | None = None, **settings: object) -> tuple[Loader, list[str]]:
    finished: list[str] = []
    repository = location.parse(tmp_path / "model_repository")
    loader_settings = LoaderSettings(repository=repository, **settings)
    times = ExportTimes.kept_in(loader_settings.state_dir / "times.json", **(priors or {}))
    return Loader(loader_settings, times, lambda state, _: finished.append(state)), finished


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


def test_an_id_is_exported_by_one_process_at_a_time(tmp_path: Path) -> None:
    """The lock an export holds: another process (an earlier loader's export still finishing) cannot take it."""
    probe = (
        "import fcntl, sys; handle = open(sys.argv[1], 'w')\n"
        "try:\n    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(3)\n"
    )
    lock_file = str(tmp_path / "locks" / "org--kws.lock")
    with export_lock(tmp_path, "org--kws"):
        held = subprocess.run([sys.executable, "-c", probe, lock_file], check=False)
    free = subprocess.run([sys.executable, "-c", probe, lock_file], check=False)
    assert (held.returncode, free.returncode) == (3, 0)


def test_learned_export_times_outlive_the_loader(tmp_path: Path) -> None:
    first = ExportTimes.kept_in(tmp_path / "times.json")
    first.record(0, 40.0)  # the prior says 8 s for a tiny checkpoint; this machine took 40
    first.record(0, 24.0)
    again = ExportTimes.kept_in(tmp_path / "times.json")
    assert again.scale == first.scale == 4.0 and again.estimate(0) == first.estimate(0) == 32.0
    (tmp_path / "broken.json").write_text("{not json")
    assert ExportTimes.kept_in(tmp_path / "broken.json").scale == 1.0  # a broken file: the priors, said in the log


def test_an_estimate_counts_the_export_ahead_and_what_this_machine_takes(
    offline_hub_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one export running, a second id's estimated_time is within 2x of when it is really exported, on a
    machine far slower than the priors say: the loader learns from a first export, and a restarted loader reads
    what was learned back. Each export here takes EXPORT_S (a stand-in for the export process, so that the
    figures do not ride on this machine's load; real exports are the other tests')."""
    export_s = 1.5

    async def export(self: Loader, folder: str, job: object) -> None:
        await asyncio.sleep(export_s)

    monkeypatch.setattr(Loader, "_export_in_process", export)
    for repo_id in ("org/first", "org/ahead", "org/next"):
        _build(offline_hub_cache, repo_id)
    settings = {"state_dir": tmp_path / "state", "priors": {"fixed_s": 0.1}}  # priors 15x too hopeful

    async def exported(loader: Loader, model_id: str) -> float:
        started, job = time.monotonic(), await loader.request(model_id)
        while job.state not in (ExportState.EXPORTED, ExportState.FAILED):
            await asyncio.sleep(0.02)
        assert job.state == ExportState.EXPORTED, job.error
        return time.monotonic() - started

    async def scenario() -> tuple[float, float, float]:
        loader, _ = _loader(tmp_path, **settings)
        naive = (await loader.request("org/first")).remaining_s()
        await exported(loader, "org/first")  # learns this machine
        loader, _ = _loader(tmp_path, **settings)  # a new loader: what was learned is read back
        ahead = asyncio.ensure_future(exported(loader, "org/ahead"))
        while "org/ahead" not in loader.jobs or loader.jobs["org/ahead"].state != ExportState.EXPORTING:
            await asyncio.sleep(0.01)
        estimate = (await loader.request("org/next")).remaining_s()
        took = await exported(loader, "org/next")
        await ahead
        return naive, estimate, took

    naive, estimate, took = asyncio.run(scenario())
    print(f"estimated {estimate:.1f} s (the priors alone: {naive:.1f} s), exported in {took:.1f} s")
    assert took / 2 <= estimate <= took * 2
    assert naive < took / 2  # what the priors alone would have said: the learning is what makes it right
