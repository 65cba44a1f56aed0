"""deploy/k8s: every overlay renders with kubectl's kustomize, validates against the Kubernetes API schemas, and
names the images, ports, probes, commands and settings that the Dockerfiles and the code really use."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import triton_arguments, triton_launch
from kubernetes_validate import validate
from kubernetes_validate.utils import latest_version

from gateway.app import create_app
from gateway.settings import Settings
from loader.__main__ import settings_from as loader_settings
from loader.settings import LoaderSettings
from local_triton.tritonserver import Ports
from model_store.__main__ import main as model_store_main
from triton_steps.blas import CORETYPE_VARIABLE, steps_environment
from triton_steps.contract import DEFAULT_LOADER_PORT

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ["cpu", "gpu"]


def render(overlay: str) -> list[dict]:
    # The machine's kubectl, else the one `make install` puts in the venv (scripts/install-kubectl.sh).
    kubectl = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if kubectl is None:
        pytest.skip("no kubectl: scripts/install-kubectl.sh installs one on x86_64 only")
    result = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy/k8s/overlays" / overlay)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def container(objects: list[dict], deployment: str, name: str) -> dict:
    containers = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


class _TagsIgnored(yaml.SafeLoader):
    """Reads compose files whose ``!reset`` tags a plain safe loader refuses."""


_TagsIgnored.add_multi_constructor("!", lambda loader, suffix, node: None)


def compose_image(service: str, overlay: str = "gpu") -> str:
    """The image compose runs ``service`` from, in the variant matching ``overlay`` (cpu: with
    docker-compose.cpu.yml)."""
    files = ["docker-compose.yml"] + (["docker-compose.cpu.yml"] if overlay == "cpu" else [])
    images = [yaml.load((ROOT / f).read_text(), _TagsIgnored)["services"].get(service, {}).get("image") for f in files]
    return [image for image in images if image][-1]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    objects = render(overlay)
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for obj in objects:
        validate(obj, latest_version(), strict=True)  # raises on any unknown or mistyped field


def test_gpu_overlay_asks_for_a_gpu_and_cpu_overlay_does_not() -> None:
    gpu = container(render("gpu"), "triton", "triton")["resources"]
    cpu = container(render("cpu"), "triton", "triton")["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in str(cpu)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_matches_its_image_ports_and_model_store(overlay: str, tmp_path: Path) -> None:
    objects = render(overlay)
    triton = container(objects, "triton", "triton")
    assert triton["image"] == compose_image("triton", overlay)
    ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
    assert ports == {"http": Ports().http, "grpc": Ports().grpc, "metrics": Ports().metrics}
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert triton["command"] == ["sh", "-c"]
    (line,) = triton["args"]
    store = {"MODEL_REPOSITORY": "s3://b/m", "AWS_ENDPOINT_URL": "http://minio:9000"}
    launch = triton_launch(line, {**store, **find(objects, "ConfigMap", "tracing")["data"]}, tmp_path)
    arguments = launch.arguments
    assert launch.environment.get(CORETYPE_VARIABLE) == steps_environment({}).get(CORETYPE_VARIABLE)
    assert {"--model-control-mode=explicit", "--load-model=*"} <= set(arguments)
    assert "--model-repository=s3://http://minio:9000/b/m" in arguments  # model_store's form, run for real
    assert not any(a.startswith("--trace-config") for a in arguments)  # the ConfigMap's empty endpoint: off
    traced = {**store, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "TRITON_TRACE_RATE": "1"}
    assert "--trace-config=mode=opentelemetry" in triton_arguments(line, traced, tmp_path)
    assert {r["configMapRef"]["name"] for r in triton["envFrom"] if "configMapRef" in r} >= {"model-store", "tracing"}
    gateway = container(objects, "gateway", "gateway")
    assert "tracing" in {r["configMapRef"]["name"] for r in gateway["envFrom"] if "configMapRef" in r}
    mounts = {m["mountPath"] for m in triton["volumeMounts"]}
    assert "/dev/shm" in mounts
    store = find(objects, "ConfigMap", "model-store")["data"]
    assert store["MODEL_REPOSITORY"].startswith("s3://")
    sync = container(objects, "triton", "model-sync")
    assert sync["image"] == triton["image"]
    assert sync["command"][:4] == ["python3", "-m", "model_store", "sync"]
    assert f"127.0.0.1:{Ports().grpc}" in sync["command"]
    # it finds dead stubs from Triton's processes (model_store.stub_processes), so it must see them
    assert find(objects, "Deployment", "triton")["spec"]["template"]["spec"]["shareProcessNamespace"] is True
    secrets = find(objects, "Secret", "s3-credentials")["stringData"]
    assert set(secrets) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_the_model_store_commands_in_the_manifests_run(capsys) -> None:
    assert model_store_main(["triton-url", "s3://my-bucket/model_repository"]) == 0
    assert capsys.readouterr().out.strip() == "s3://my-bucket/model_repository"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_matches_its_image_settings_routes_and_triton_service(overlay: str) -> None:
    objects = render(overlay)
    gateway = container(objects, "gateway", "gateway")
    assert gateway["image"] == compose_image("gateway")
    settings = find(objects, "ConfigMap", "gateway")["data"]
    known = {f"GATEWAY_{name.upper()}" for name in Settings.model_fields}
    assert set(settings) <= known, set(settings) - known
    Settings(**{key.removeprefix("GATEWAY_").lower(): value for key, value in settings.items()})  # valid values
    token = find(objects, "Secret", "gateway-token")["stringData"]
    assert set(token) == {"GATEWAY_API_TOKEN"}
    exposed = re.search(r"^EXPOSE (\d+)", (ROOT / "gateway/Dockerfile").read_text(), re.M).group(1)
    assert gateway["ports"][0]["containerPort"] == int(settings["GATEWAY_PORT"]) == int(exposed)
    routes = set(create_app(Settings()).openapi()["paths"])
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/ready" and "/ready" in routes
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health" and "/health" in routes
    assert find(objects, "Deployment", "gateway")["spec"]["replicas"] >= 2
    # the gateway resolves every Triton replica through the headless gRPC Service
    service = find(objects, "Service", "triton-grpc")
    assert service["spec"]["clusterIP"] == "None"
    assert settings["GATEWAY_TRITON_URL"] == f"dns:///triton-grpc:{service['spec']['ports'][0]['port']}"
    assert settings["GATEWAY_TRITON_LB_POLICY"] == "round_robin"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_and_disruption_budgets(overlay: str) -> None:
    objects = render(overlay)
    gateway = find(objects, "HorizontalPodAutoscaler", "gateway")["spec"]
    assert gateway["metrics"][0]["resource"]["name"] == "cpu"
    triton = find(objects, "HorizontalPodAutoscaler", "triton")["spec"]
    metric = triton["metrics"][0]["pods"]["metric"]["name"]
    adapter = yaml.safe_load((ROOT / "deploy/k8s/monitoring/prometheus-adapter-values.yaml").read_text())
    rule = adapter["rules"]["custom"][0]
    assert rule["name"]["as"] == metric
    assert "nv_inference_queue_duration_us" in rule["metricsQuery"]
    assert "nv_inference_request_success" in rule["metricsQuery"]
    for name in ("gateway", "triton"):
        budget = find(objects, "PodDisruptionBudget", name)["spec"]
        assert budget["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}


def test_tritons_ports_are_for_the_gateway_only() -> None:
    objects = render("cpu")
    policy = find(objects, "NetworkPolicy", "triton")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "triton"}
    assert policy["policyTypes"] == ["Ingress"]
    allowed = {rule["ports"][0]["port"]: rule["from"][0] for rule in policy["ingress"]}
    assert allowed[Ports().grpc] == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}
    assert set(allowed) == {Ports().grpc, Ports().metrics}  # HTTP (repository API) is not reachable at all


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_loader_is_where_the_gateway_asks_and_writes_to_the_repository(overlay: str) -> None:
    objects = render(overlay)
    loader = container(objects, "loader", "loader")
    assert loader["image"] == yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["loader"]["image"]
    assert find(objects, "Deployment", "loader")["spec"]["strategy"]["type"] == "Recreate"  # one manifest writer
    sources = {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in loader["envFrom"]}
    assert {"model-store", "s3-credentials", "loader", "hf-token"} <= sources
    settings = find(objects, "ConfigMap", "loader")["data"]
    known = {f"LOADER_{name.upper()}" for name in LoaderSettings.model_fields}
    assert set(settings) <= known, set(settings) - known
    service = find(objects, "Service", "loader")["spec"]["ports"][0]
    exposed = re.search(r"^EXPOSE (\d+)", (ROOT / "docker/loader.Dockerfile").read_text(), re.M).group(1)
    assert loader["ports"][0]["containerPort"] == int(settings["LOADER_PORT"]) == int(exposed) == DEFAULT_LOADER_PORT
    gateway = find(objects, "ConfigMap", "gateway")["data"]
    assert gateway["GATEWAY_LOADER_URL"] == f"http://loader:{service['port']}"
    assert gateway["GATEWAY_AUTOLOAD"] == ""  # off until the operator names the patterns
    policy = find(objects, "NetworkPolicy", "loader")["spec"]
    assert policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "gateway"}


def test_the_loader_configmap_values_parse(monkeypatch) -> None:
    settings = find(render("cpu"), "ConfigMap", "loader")["data"]
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    parsed = loader_settings([])
    assert parsed.port == int(settings["LOADER_PORT"]) and parsed.max_queue == int(settings["LOADER_MAX_QUEUE"])
    assert parsed.failure_ttl_s == float(settings["LOADER_FAILURE_TTL_S"]) and parsed.max_gb == 4


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rollouts_and_shutdowns_lose_no_request(overlay: str) -> None:
    """A new replica is up before an old one goes; a stopping pod keeps serving while it leaves the endpoints
    (preStop), then drains within its grace period: the gateway for GATEWAY_DRAIN_S, Triton for its exit
    timeout, which covers the gateway's request timeout."""
    objects = render(overlay)
    settings = find(objects, "ConfigMap", "gateway")["data"]
    triton_args = " ".join(container(objects, "triton", "triton")["args"])
    exit_timeout = int(re.search(r"--exit-timeout-secs=(\d+)", triton_args).group(1))
    assert exit_timeout >= float(settings["GATEWAY_TIMEOUT_S"])
    for name, needed in (("gateway", float(settings["GATEWAY_DRAIN_S"])), ("triton", exit_timeout)):
        deployment = find(objects, "Deployment", name)
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        pod = deployment["spec"]["template"]["spec"]
        served = container(objects, name, name)
        pre_stop = served["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + needed
