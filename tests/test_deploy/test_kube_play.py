"""The Kubernetes CPU overlay, run rather than only validated (``make compose-test``): ``podman kube play`` runs
its Deployments as local pods, Triton reading the model repository from S3 (moto), and the gateway classifies
every sample. Skipped where podman is not usable.

``podman kube play`` (4.3) is not a cluster, so the rendered manifests get these test-only patches, each for a
missing piece of podman, never for a defect of the manifests:
- only ConfigMaps and Deployments are played (one replica each): podman has no Services (so no cluster DNS),
  NetworkPolicies, autoscalers or disruption budgets; the loader is left out (its image needs PyTorch's index);
- the Secrets are created with ``podman secret create`` as JSON: kube play stores a Secret it plays in a form
  it then cannot read back ("secret ... is not valid JSON", podman issue 16269);
- each container port gets a free ``hostPort``, and the gateway reaches Triton's gRPC and Triton reaches S3
  through ``host.containers.internal`` instead of the Services;
- the ``/dev/shm`` emptyDir is dropped: podman creates it root-owned 0755, where Kubernetes makes an emptyDir
  0777, so Triton's non-root user could not create its shared-memory regions (podman's own 64 MB suffice).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
import yaml

from local_triton.tritonserver import free_port, http_ok
from model_store import location, manifest, s3

pytestmark = pytest.mark.containers

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").iterdir())
HOST = "host.containers.internal"  # the host, from a podman container
BUCKET = "models"
REPOSITORY = f"s3://{BUCKET}/model_repository"
PLAYED_KINDS = {"ConfigMap", "Deployment"}


def _podman(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture(scope="module")
def engine_env() -> dict[str, str]:
    probe = subprocess.run([str(ROOT / "scripts/compose.sh"), "engine"], capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != "podman":
        pytest.skip(f"podman kube play needs podman: {probe.stderr.strip() or probe.stdout.strip()}")
    kubectl = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if kubectl is None:
        pytest.skip("no kubectl to render the overlay")
    env = dict(os.environ, COMPOSE_VARIANT="cpu")
    for step in (["scripts/container-base-images.sh", "podman"], ["scripts/compose.sh", "build"]):
        built = subprocess.run([str(ROOT / step[0]), *step[1:]], env=env, capture_output=True, text=True)
        assert built.returncode == 0, built.stderr[-3000:]
    if "CONTAINERS_CONF" not in env:  # compose.sh wrote the ulimits this host needs
        env["CONTAINERS_CONF"] = str(ROOT / ".run" / "containers.conf")
    return env


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[int]:
    """moto's S3 server on every address (the pods reach it as host.containers.internal), holding the committed
    repository as published; yields its port."""
    port = free_port("0.0.0.0")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "0.0.0.0", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # else moto reads the host name "host.containers.internal" as a virtual-hosted bucket "host"
        env=dict(os.environ, MOTO_S3_CUSTOM_ENDPOINTS=f"http://{HOST}:{port}"),
    )
    try:
        deadline = time.monotonic() + 30
        while not http_ok(f"http://127.0.0.1:{port}/moto-api/"):
            assert process.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        with pytest.MonkeyPatch.context() as patch:
            credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
            for key, value in dict(credentials, AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint).items():
                patch.setenv(key, value)
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            target = location.parse(REPOSITORY)
            local = manifest.read(location.parse(str(ROOT / "model_repository")))
            for name in local:
                for step in local[name].models:
                    s3.upload_model(target, step, ROOT / "model_repository" / step)
                manifest.publish(target, name, local[name])
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _played(objects: list[dict], s3_port: int, ports: dict[int, int]) -> tuple[list[dict], dict[str, dict]]:
    """The rendered objects with the test-only patches of this module's docstring: (to play, Secrets)."""
    secrets = {o["metadata"]["name"]: o.get("stringData", {}) for o in objects if o["kind"] == "Secret"}
    secrets["s3-credentials"] = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    played = []
    for obj in objects:
        if obj["kind"] not in PLAYED_KINDS or obj["metadata"]["name"] == "loader":
            continue
        name = obj["metadata"]["name"]
        if obj["kind"] == "ConfigMap" and name == "model-store":
            obj["data"].update(MODEL_REPOSITORY=REPOSITORY, AWS_ENDPOINT_URL=f"http://{HOST}:{s3_port}")
        if obj["kind"] == "ConfigMap" and name == "gateway":
            obj["data"].update(GATEWAY_TRITON_URL=f"{HOST}:{ports[8001]}", GATEWAY_TRITON_LB_POLICY="pick_first")
        if obj["kind"] == "Deployment":
            obj["spec"]["replicas"] = 1
            spec = obj["spec"]["template"]["spec"]
            spec["volumes"] = [v for v in spec.get("volumes", []) if v["name"] != "dshm"]
            for container in spec["containers"]:
                container["volumeMounts"] = [m for m in container.get("volumeMounts", []) if m["name"] != "dshm"]
                for port in container.get("ports", []):
                    port["hostPort"] = ports[port["containerPort"]]
        played.append(obj)
    return played, secrets


@pytest.fixture(scope="module")
def played_overlay(engine_env: dict[str, str], s3_endpoint: int, tmp_path_factory) -> Iterator[int]:
    kubectl = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    rendered = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy/k8s/overlays/cpu")], capture_output=True, text=True, check=True
    ).stdout
    ports = {port: free_port() for port in (8000, 8001, 8002, 8080)}
    played, secrets = _played([o for o in yaml.safe_load_all(rendered) if o], s3_endpoint, ports)
    manifest_file = tmp_path_factory.mktemp("kube") / "played.yaml"
    manifest_file.write_text(yaml.safe_dump_all(played))
    env = engine_env
    had_network = _podman("network", "exists", "podman-default-kube-network", env=env).returncode == 0
    for name, data in secrets.items():  # podman reads a kube Secret as JSON of base64 values
        encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
        _podman("secret", "rm", name, env=env)
        created = _podman("secret", "create", name, "-", input=json.dumps(encoded), env=env)
        assert created.returncode == 0, created.stderr
    try:
        play = _podman("kube", "play", str(manifest_file), env=env)
        assert play.returncode == 0, play.stderr[-3000:]
        yield ports[8080]
    finally:
        _podman("kube", "down", str(manifest_file), env=env)
        for name in secrets:
            _podman("secret", "rm", name, env=env)
        if not had_network:
            _podman("network", "rm", "podman-default-kube-network", env=env)


def test_the_cpu_overlay_serves_every_sample_under_podman_kube_play(played_overlay: int) -> None:
    url = f"http://127.0.0.1:{played_overlay}"
    started = time.monotonic()
    while not http_ok(f"{url}/ready"):
        assert time.monotonic() - started < 180, httpx.get(f"{url}/ready").text if http_ok(f"{url}/health") else ""
        time.sleep(1)
    print(f"kube play: the gateway pod ready {time.monotonic() - started:.1f} s after the pods started")
    assert httpx.get(f"{url}/ready").json()["models"] == ["keyword-spotter"]  # read by Triton from S3
    for sample in SAMPLES:
        answer = httpx.post(f"{url}/", content=sample.read_bytes(), timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()[0]["label"] == sample.stem
