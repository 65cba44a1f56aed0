"""The loader as the stack runs it (``python -m loader`` under ``local_triton.services``): an export in progress
dies with its loader, whether the loader is stopped or killed, and a restarted loader writes a log with no holes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import psutil
import tiny_checkpoints
from helpers import free_port, wait_until

from local_triton.services import LoaderProcess


def _loader(root: Path) -> LoaderProcess:
    tiny_checkpoints.build("wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(root / "hf" / "hub", "org/kws"))
    return LoaderProcess(
        str(root / "model_repository"), free_port(), root / "loader.log", HF_HOME=str(root / "hf"), HF_HUB_OFFLINE="1"
    )


def _exporting(loader: LoaderProcess) -> list[psutil.Process]:
    """Ask for an export and return the loader's child processes (the export's, and multiprocessing's
    resource tracker), once it runs."""
    answer = httpx.post(f"{loader.url}/load/org/kws", timeout=30)
    assert answer.status_code == 202, answer.text
    return wait_until(lambda: psutil.Process(loader.process.pid).children(recursive=True), 60, 0.05)


def _gone(processes: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)


def test_an_export_dies_with_its_loader_killed_mid_export(tmp_path: Path) -> None:
    loader = _loader(tmp_path).start()
    try:
        export = _exporting(loader)
        os.kill(loader.process.pid, signal.SIGKILL)  # no clean-up code runs: the kernel alone
        loader.process.wait()
        wait_until(lambda: _gone(export), 3, 0.05, "the export process gone")  # an export alone takes far longer
    finally:
        loader.stop()
    assert not (tmp_path / "model_repository" / "published.json").exists()  # it died before publishing


def test_stopping_the_loader_stops_its_export_and_a_restart_appends_to_its_log(tmp_path: Path) -> None:
    loader = _loader(tmp_path).start()
    export = _exporting(loader)
    loader.stop()
    wait_until(lambda: _gone(export), 10, 0.05, "the export process gone")
    first_run = (tmp_path / "loader.log").read_bytes()
    assert b"org/kws: queued" in first_run
    loader.start()
    try:
        httpx.post(f"{loader.url}/load/org/other", timeout=30)  # a line from the second run (a refusal)
        log = (tmp_path / "loader.log").read_bytes()
    finally:
        loader.stop()
    assert log.startswith(first_run) and len(log) > len(first_run)  # appended to: never truncated under a writer
    assert b"\0" not in log
