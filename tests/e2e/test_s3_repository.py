"""An S3 model repository, for real: a local S3-compatible server (moto), the exporter writing to it, the
real tritonserver reading from it (explicit model control), ``model_store.sync`` loading what is published
while it serves, and the gateway in front."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest
import tiny_checkpoints
from helpers import (
    TOLERANCE,
    free_port,
    make_waveform,
    read_until_ready,
    running_gateway,
    serve_command,
    wait_until,
    wav_bytes,
)
from transformers import pipeline

from export.exporter import ExportOptions, export_model
from local_triton.services import LoaderProcess
from local_triton.tritonserver import LocalTriton, Ports, http_ok
from model_store import location, manifest
from model_store.sync import Sync
from triton_control import TritonControl
from triton_steps import engines
from triton_steps.contract import NETWORK_FILE, StepNames

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "models"
REPOSITORY = f"s3://{BUCKET}/triton/repo"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's S3 server on loopback, with the AWS_* environment pointing at it for this module."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            patch.setenv(key, value)
        patch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        try:
            deadline = time.monotonic() + 30
            while not http_ok(f"{endpoint}/moto-api/"):
                assert process.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            yield endpoint
        finally:
            process.terminate()
            process.wait(10)


def _export(checkpoint: Path, name: str, **options) -> None:
    """Into the bucket, on the shared repository's engine (OpenVINO), so that a re-export serves the same
    scores to the last digit whatever auto would measure."""
    options = {"engine": engines.OPENVINO, **options}
    export_model(str(checkpoint), location.parse(REPOSITORY), ExportOptions(name=name, **options))


@pytest.fixture(scope="module")
def served(s3_server: str, checkpoints: dict[str, Path], tmp_path_factory) -> Iterator[tuple[LocalTriton, str]]:
    """``ast`` exported to S3, a tritonserver reading s3:// with a sync beside it, and a gateway."""
    _export(checkpoints["ast"], "ast")
    triton = LocalTriton(
        location.parse(REPOSITORY), tmp_path_factory.mktemp("s3triton"), Ports(*(free_port() for _ in range(3)))
    )
    with triton:
        sync = Sync(location.parse(REPOSITORY), TritonControl(triton.grpc_url), interval_s=0.5).start()
        try:
            with running_gateway(triton.grpc_url, models_refresh_s="1") as url:
                yield triton, url
        finally:
            sync.stop()


def _listed(gateway: str) -> set[str]:
    return {m["name"] for m in httpx.get(f"{gateway}/models", timeout=10).json()}


def test_the_export_lands_in_the_bucket_steps_then_ensemble_then_manifest(served) -> None:
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    for model in StepNames("ast").all():
        assert f"triton/repo/{model}/config.pbtxt" in keys
    assert f"triton/repo/{StepNames('ast').network}/1/{NETWORK_FILE}" in keys
    entry = manifest.read(location.parse(REPOSITORY))["ast"]
    assert entry.models == StepNames("ast").all() and len(entry.revision) == 16


def test_scores_from_s3_equal_transformers_pipeline(served, checkpoints) -> None:
    _, s3_gateway = served
    waveform = make_waveform(1.2, seed=3)
    from_s3 = httpx.post(f"{s3_gateway}/models/ast", content=wav_bytes(waveform), timeout=60)
    assert from_s3.status_code == 200, from_s3.text
    reference = pipeline("audio-classification", model=str(checkpoints["ast"]), device="cpu")
    expected = reference(waveform.copy(), top_k=99)  # every label, as the gateway answers by default
    assert [p["label"] for p in from_s3.json()] == [p["label"] for p in expected]
    np.testing.assert_allclose([p["score"] for p in from_s3.json()], [p["score"] for p in expected], atol=TOLERANCE)


def test_a_model_exported_while_serving_is_served_without_a_restart(served, checkpoints) -> None:
    triton, gateway = served
    pid = triton.process.pid
    assert "hubert" not in _listed(gateway)
    _export(checkpoints["hubert"], "hubert")
    wait_until(lambda: "hubert" in _listed(gateway), 60, 0.25)
    answer = httpx.post(f"{gateway}/models/hubert", content=wav_bytes(make_waveform(1.0)), timeout=60)
    assert answer.status_code == 200 and len(answer.json()) > 1
    assert triton.process.pid == pid and triton.process.poll() is None


def test_a_reexport_under_load_loses_no_request(served, checkpoints) -> None:
    """Re-export ``ast`` (a new revision: another max_seconds) while 4 clients keep classifying."""
    _, gateway = served
    audio = wav_bytes(make_waveform(1.0, seed=5))
    expected = httpx.post(f"{gateway}/models/ast", content=audio, timeout=60).json()

    def max_seconds() -> float | None:
        models = httpx.get(f"{gateway}/models", timeout=10).json()
        return next(m["max_seconds"] for m in models if m["name"] == "ast")

    async def load() -> list[tuple[int, list]]:
        answers: list[tuple[int, list]] = []
        done = asyncio.Event()

        async def client(http: httpx.AsyncClient) -> None:
            while not done.is_set() or len(answers) < 40:
                response = await http.post(f"{gateway}/models/ast", content=audio)
                answers.append((response.status_code, response.json()))

        async def reexport() -> None:
            await asyncio.to_thread(_export, checkpoints["ast"], "ast", max_seconds=60.0)
            await asyncio.to_thread(wait_until, lambda: max_seconds() == 60.0, 60, 0.25)
            await asyncio.sleep(1.0)  # keep the load on across the swap
            done.set()

        async with httpx.AsyncClient(timeout=60) as http:
            await asyncio.gather(reexport(), *(client(http) for _ in range(4)))
        return answers

    answers = asyncio.run(load())
    assert [status for status, _ in answers] == [200] * len(answers)
    for _, body in answers:
        assert [p["label"] for p in body] == [p["label"] for p in expected]
        np.testing.assert_allclose([p["score"] for p in body], [p["score"] for p in expected], atol=1e-6)


def test_an_unloaded_model_leaves_the_gateway(served) -> None:
    triton, gateway = served
    wait_until(lambda: "hubert" in _listed(gateway), 60, 0.25)
    TritonControl(triton.grpc_url).unload("hubert")
    wait_until(lambda: "hubert" not in _listed(gateway), 60, 0.25)  # not served, and not listed as failed either
    answer = httpx.post(f"{gateway}/models/hubert", content=wav_bytes(make_waveform(1.0)), timeout=60)
    assert answer.status_code == 404 and "not served" in answer.json()["error"]


def test_the_triton_url_carries_a_custom_endpoint(s3_server: str) -> None:
    assert location.parse(REPOSITORY).triton_url() == f"s3://{s3_server}/{BUCKET}/triton/repo"
    assert os.environ["AWS_ENDPOINT_URL"] == s3_server


def test_make_serve_serves_straight_from_s3(served, tmp_path: Path) -> None:
    """``make serve REPOSITORY=s3://...`` (the local mode's own entry point), classifying from the bucket."""
    command, ports = serve_command(REPOSITORY, tmp_path, "DEFAULT_MODEL=ast")
    serve = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        read_until_ready(serve)
        answer = httpx.post(f"http://127.0.0.1:{ports['GATEWAY_PORT']}/", content=wav_bytes(make_waveform(1.0)))
        assert answer.status_code == 200 and len(answer.json()) > 1
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.communicate(timeout=60)  # until make serve, not just make, has exited: it stops its children


def test_the_loader_exports_an_id_on_demand_into_the_bucket(served, tmp_path: Path) -> None:
    """As in Kubernetes: the loader writes to the S3 repository, Triton loads the model from the bucket."""
    triton, _ = served
    tiny_checkpoints.build("wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(tmp_path / "hf" / "hub", "org/s3-kws"))
    loader = LoaderProcess(
        REPOSITORY, free_port(), tmp_path / "loader.log", HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1"
    )
    with loader, running_gateway(triton.grpc_url, autoload="org/*", loader_url=loader.url) as gateway:
        answer = httpx.post(
            f"{gateway}/models/org/s3-kws",
            content=wav_bytes(make_waveform(1.0)),
            headers={"X-Wait-For-Model": "true"},
            timeout=300,
        )
        assert answer.status_code == 200, answer.text
    entry = manifest.read(location.parse(REPOSITORY))["org--s3-kws"]
    assert entry.on_demand and entry.models == StepNames("org--s3-kws").all()


def test_tritons_url_form_works_without_the_endpoint_variable(served, s3_server: str, checkpoints, monkeypatch) -> None:
    """``s3://http://host:port/bucket/prefix`` (what Triton users type) is the same bucket, exported and read."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    triton_form = f"s3://{s3_server}/{BUCKET}/triton-form"
    export_model(str(checkpoints["hubert"]), location.parse(triton_form), ExportOptions(name="tf"))
    assert "tf" in manifest.read(location.parse(triton_form))
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    assert "tf" in manifest.read(location.parse(f"s3://{BUCKET}/triton-form"))


def test_make_serve_fails_at_once_with_the_reason_when_the_bucket_cannot_be_read(tmp_path: Path) -> None:
    unreachable = f"s3://http://127.0.0.1:{free_port()}/{BUCKET}/repo"  # nothing listens there
    started = time.monotonic()
    command, _ = serve_command(unreachable, tmp_path)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "cannot read the repository" in result.stderr and "Could not connect" in result.stderr, result.stderr
    assert time.monotonic() - started < 60  # not Triton's minute of retries, nor the 300 s readiness wait
