"""``published.json``: what each exported model last published, at the repository's root.

An entry is written only after every file of the model is in place, so a reader that follows the manifest
never loads half a model. Triton itself ignores files at the repository root. In a folder, exports that
publish at the same moment take turns (a lock on the folder); in S3, which has no lock, two exports
finishing at the same moment may each miss the other's entry (export again).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from model_store import s3
from model_store.location import Location

MANIFEST_FILE = "published.json"


@dataclass(frozen=True)
class Entry:
    revision: str  # a content hash of the model's files: a changed revision means "load it again"
    models: list[str]  # Triton models to load, in order: the steps, then the ensemble
    on_demand: bool = False  # exported by the loader for a request: the gateway loads and unloads it, not the sync


def read(location: Location) -> dict[str, Entry]:
    """Ensemble name -> its entry; empty when nothing was published yet."""
    if location.is_s3:
        raw = s3.read(location, MANIFEST_FILE)
    else:
        path = location.path / MANIFEST_FILE
        raw = path.read_bytes() if path.is_file() else None
    if raw is None:
        return {}
    data = json.loads(raw.decode("utf-8"))
    return {name: Entry(**entry) for name, entry in data.get("models", {}).items()}


def publish(location: Location, name: str, entry: Entry) -> None:
    """Record ``name`` as complete at ``entry.revision``."""
    if location.is_s3:
        s3.write(location, _with_entry(location, name, entry), MANIFEST_FILE)
        return
    location.path.mkdir(parents=True, exist_ok=True)
    with _exclusive(location.path):
        data = _with_entry(location, name, entry)
        handle, temporary = tempfile.mkstemp(prefix=f".{MANIFEST_FILE}.", dir=location.path)
        # mkstemp makes it 0600: Triton and the sync may run as another user (the images' triton-server)
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, location.path / MANIFEST_FILE)  # readers see the old manifest or the new one


def _with_entry(location: Location, name: str, entry: Entry) -> bytes:
    entries = read(location)
    entries[name] = entry
    return (json.dumps({"models": {n: asdict(e) for n, e in sorted(entries.items())}}, indent=2) + "\n").encode()


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Held by one process at a time: flock on the folder itself (no lock file left in the repository), released
    by the kernel if its holder dies."""
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)
