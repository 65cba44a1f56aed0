"""The sync against a real tritonserver: an ensemble that leaves the manifest is unloaded with its steps, and
one published again is loaded again."""

from __future__ import annotations

import shutil
from pathlib import Path

from local_triton.tritonserver import LocalTriton, Ports, free_port
from model_store import location, manifest
from model_store.sync import Sync
from triton_control import TritonControl
from triton_steps import contract

ROOT = Path(__file__).resolve().parents[2]
MODEL = contract.StepNames("keyword-spotter")


def test_an_unpublished_model_is_unloaded_with_its_steps_and_a_republished_one_loaded(tmp_path: Path) -> None:
    repository = tmp_path / "model_repository"
    shutil.copytree(ROOT / "model_repository", repository)
    where = location.parse(repository)
    entry = manifest.read(where)[MODEL.ensemble]
    ports = Ports(free_port(), free_port(), free_port())
    with LocalTriton(repository, tmp_path / "work", ports) as triton, TritonControl(triton.grpc_url) as control:
        sync = Sync(where, control)
        assert sync.step() == []  # what Triton started with is current

        (repository / manifest.MANIFEST_FILE).write_text('{"models": {}}\n')
        assert sync.step() == [MODEL.ensemble]
        assert not any(control.model_ready(model) for model in MODEL.all())  # the steps too: no memory held

        manifest.publish(where, MODEL.ensemble, entry)
        assert sync.step() == [MODEL.ensemble]
        assert all(control.model_ready(model) for model in MODEL.all())
        assert control.classify(MODEL.ensemble, (ROOT / "samples" / "yes.wav").read_bytes())[0][0] == "yes"
