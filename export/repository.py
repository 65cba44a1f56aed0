"""Write an exported model into a Triton model repository (a folder or S3), replacing an existing one.

Each model directory is built complete in a staging folder first. In a local folder it is then put in place
with one ``renameat2(RENAME_EXCHANGE)`` (or a rename when it is new): a server polling the folder sees the old
directory or the new one, never a half-written one. In S3 each file is uploaded whole (``config.pbtxt``
last). Either way the ensemble comes last, and only then does the manifest (``published.json``) name the
model's new revision: what ``model_store.sync`` waits for before it asks Triton to load it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from export import model_configs
from model_store import manifest, s3
from model_store.location import Location
from triton_steps import contract

_RENAME_EXCHANGE = 2


@dataclass
class ModelDir:
    """One model directory: its config, the files at its top and those in version 1/."""

    config: mc.ModelConfig
    files: dict[str, str | bytes] = field(default_factory=dict)
    version_files: dict[str, str | bytes | Path] = field(default_factory=dict)  # a Path is moved in

    def write(self, path: Path) -> None:
        (path / contract.VERSION_DIR).mkdir(parents=True)
        (path / contract.CONFIG_FILE).write_text(model_configs.to_text(self.config), encoding="utf-8")
        for folder, files in ((path, self.files), (path / contract.VERSION_DIR, self.version_files)):
            for name, content in files.items():
                target = folder / name
                if isinstance(content, Path):
                    shutil.move(content, target)
                elif isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    target.write_text(content, encoding="utf-8")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _put_in_place(staged: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staged, target)
        return
    if _exchange(staged, target):
        shutil.rmtree(staged)  # now holds the old model
        return
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(target, old)  # a short window without the model, where renameat2 is missing
    os.rename(staged, target)
    shutil.rmtree(old)


def _revision(staging: Path) -> str:
    """A hash of every staged file (names and bytes): equal exports give equal revisions."""
    digest = hashlib.sha256()
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        digest.update(path.relative_to(staging).as_posix().encode() + b"\0")
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def write(location: Location, models: dict[str, ModelDir], on_demand: bool = False) -> str:
    """Write ``models`` (name -> directory; the ensemble last) into ``location``; returns the revision.
    ``on_demand``: published for the gateway to load when asked (``manifest.Entry.on_demand``)."""
    if location.is_s3:
        staging = Path(tempfile.mkdtemp(prefix=".export-"))
    else:
        location.path.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=location.path.parent))
    try:
        for name, model in models.items():
            model.write(staging / name)
        revision = _revision(staging)
        for name in models:
            if location.is_s3:
                s3.upload_model(location, name, staging / name)
            else:
                _put_in_place(staging / name, location.path / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ensemble = list(models)[-1]
    manifest.publish(location, ensemble, manifest.Entry(revision, list(models), on_demand))
    return revision
