"""The manifest of a repository folder keeps every entry when exports publish at the same moment."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from model_store import manifest
from model_store.location import Location


def _publish_many(folder: str, prefix: str) -> None:
    for index in range(40):
        manifest.publish(Location(path=Path(folder)), f"{prefix}{index}", manifest.Entry(f"r{index}", [prefix]))


def test_concurrent_publishers_lose_no_entry(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_publish_many, args=(str(tmp_path), prefix)) for prefix in "abc"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    entries = manifest.read(Location(path=tmp_path))
    assert sorted(entries) == sorted(f"{p}{i}" for p in "abc" for i in range(40))
    assert sorted(p.name for p in tmp_path.iterdir()) == [manifest.MANIFEST_FILE]  # no lock file, no temporary
