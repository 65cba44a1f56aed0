"""docker-compose.yml and the Dockerfiles, checked statically (no Docker engine runs on these machines)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import time
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import tomllib
import yaml
from helpers import triton_arguments, triton_launch

from triton_steps.blas import CORETYPE_VARIABLE, steps_environment
from triton_steps.contract import DEFAULT_LOADER_PORT

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROVIDED_BY_TRITON = {"triton_python_backend_utils"}


def normalised(path: Path) -> dict:
    """A compose file as docker-compose itself normalises it (this also validates it)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is missing: scripts/install-system-packages.sh installs it")
    result = subprocess.run([binary, "-f", str(path), "config"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def normalised_with_profile(profile: str) -> dict:
    result = subprocess.run(
        [
            shutil.which("docker-compose") or "docker-compose",
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--profile",
            profile,
            "config",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def compose() -> dict:
    return normalised(ROOT / "docker-compose.yml")


class _Reset:
    """Compose's ``!reset`` tag: the key is removed from the merged model."""


class _ComposeLoader(yaml.SafeLoader):
    pass


_ComposeLoader.add_constructor("!reset", lambda loader, node: _Reset())


def _merge(base: dict, override: dict) -> dict:
    """Compose's merge rules for mappings, with ``!reset`` (enough for the files of this project)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, _Reset):
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def test_cpu_variant_is_the_same_stack_without_the_gpu(tmp_path: Path) -> None:
    base = yaml.load((ROOT / "docker-compose.yml").read_text(), Loader=_ComposeLoader)
    cpu = yaml.load((ROOT / "docker-compose.cpu.yml").read_text(), Loader=_ComposeLoader)
    merged_file = tmp_path / "docker-compose.yml"  # beside nothing: build contexts are not resolved by `config`
    merged_file.write_text(yaml.safe_dump(_merge(base, cpu)))
    merged = normalised(merged_file)
    assert "deploy" not in merged["services"]["triton"]
    assert set(merged["services"]) == set(base["services"])
    assert merged["services"]["triton"]["command"] == base["services"]["triton"]["command"]
    cpu_image = merged["services"]["triton"]["image"]
    assert merged["services"]["triton"]["build"]["dockerfile"] == "docker/triton-cpu.Dockerfile"
    # every service that runs from Triton's image runs from the CPU one
    for name, service in base["services"].items():
        if service.get("image") == base["services"]["triton"]["image"]:
            assert merged["services"][name]["image"] == cpu_image, name


def test_triton_service(compose: dict, tmp_path: Path) -> None:
    triton = compose["services"]["triton"]
    dockerfile = (ROOT / triton["build"]["dockerfile"]).read_text()
    assert re.search(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", dockerfile)
    assert any(v["target"] == "/models" and v["source"].endswith("model_repository") for v in _volumes(triton))
    assert triton["command"][:2] == ["sh", "-c"]
    line = triton["command"][2].replace("$$", "$")  # compose's escape for a literal $
    launch = triton_launch(line, {"TRITON_TRACE_RATE": "1"}, tmp_path)
    plain = launch.arguments
    # the steps' numpy on this CPU's kernels (triton_steps.blas): what make serve gives its stubs, Triton's here
    assert launch.environment.get(CORETYPE_VARIABLE) == steps_environment({}).get(CORETYPE_VARIABLE)
    chosen = triton_launch(line, {CORETYPE_VARIABLE: "Haswell"}, tmp_path).environment[CORETYPE_VARIABLE]
    assert chosen == "Haswell"  # the operator's, kept
    assert {"--model-repository=/models", "--model-control-mode=explicit", "--load-model=*"} <= set(plain)
    assert not any(a.startswith("--trace-config") for a in plain)  # no endpoint, no tracing
    traced = triton_arguments(
        line, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "TRITON_TRACE_RATE": "5"}, tmp_path
    )
    assert traced[: len(plain)] == plain and "--trace-config=rate=5" in traced
    for service in ("triton", "gateway"):  # one variable traces both
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in compose["services"][service]["environment"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    assert triton["healthcheck"]["test"][1] == "python3"  # both Triton images have it; the slim one no curl
    assert "ports" not in triton  # only the gateway is published


def test_the_model_sync_runs_beside_triton_in_its_container(compose: dict) -> None:
    """The sync finds dead stubs among Triton's processes: it runs in Triton's container (one PID namespace
    nothing else can take away: no namespace-holder container, no `pid:` sharing), restarted if it fails,
    under an init that also reaps what a dead Triton leaves."""
    triton = compose["services"]["triton"]
    line = triton["command"][2]
    assert line.startswith("(until python3 -m model_store sync --repository /models --triton-url 127.0.0.1:8001;")
    assert "do sleep 2; done) &" in line and "exec env $$steps_env tritonserver" in line
    assert triton["init"] is True and triton["restart"] == "unless-stopped"
    assert not any("pid" in service for service in compose["services"].values())
    assert set(compose["services"]) == {"triton", "gateway", "loader"}


def test_gateway_service(compose: dict) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["build"]["dockerfile"] == "gateway/Dockerfile"
    assert [p["target"] for p in gateway["ports"]] == [8080]
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    assert gateway["environment"]["GATEWAY_TRITON_URL"] == "triton:8001"  # Triton's default gRPC port


def test_loader_service_is_what_the_gateway_asks(compose: dict) -> None:
    """The loader runs with the on-demand profile, writes where Triton reads, on the port the gateway asks."""
    services = normalised_with_profile("on-demand")["services"]
    loader, triton, gateway = services["loader"], services["triton"], services["gateway"]
    assert loader["build"]["dockerfile"] == "docker/loader.Dockerfile"
    assert loader["profiles"] == ["on-demand"]  # without the profile the stack stays as it was
    (repository,) = [v for v in _volumes(loader) if v["target"] == loader["environment"]["MODEL_REPOSITORY"]]
    assert not any(str(v).endswith(":ro") or isinstance(v, dict) and v.get("read_only") for v in loader["volumes"])
    assert repository["source"] == next(v["source"] for v in _volumes(triton) if v["target"] == "/models")
    assert gateway["environment"]["GATEWAY_LOADER_URL"] == f"http://loader:{DEFAULT_LOADER_PORT}"
    assert f"LOADER_PORT={DEFAULT_LOADER_PORT}" in (ROOT / "docker/loader.Dockerfile").read_text()
    assert gateway["environment"]["GATEWAY_AUTOLOAD"] == ""  # off unless the operator sets the patterns


def _volumes(service: dict) -> list[dict]:
    return [
        v if isinstance(v, dict) else dict(zip(("source", "target"), v.split(":")[:2], strict=True))
        for v in service.get("volumes", [])
    ]


def _third_party_imports(files: list[Path]) -> set[str]:
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    local = {name.rstrip("*") for name in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    return {n for n in names if n not in sys.stdlib_module_names and n not in local | PROVIDED_BY_TRITON}


def _declared(*extras: str) -> set[str]:
    """What installing the project with ``extras`` brings, following extras that name other extras."""
    requirements = list(PYPROJECT["project"]["dependencies"])  # none: each part names its own
    pending = list(extras)
    while pending:
        for requirement in PYPROJECT["project"]["optional-dependencies"][pending.pop()]:
            inner = re.fullmatch(r"hf-audio-triton\[(.+)\]", requirement)
            if inner:
                pending += inner.group(1).split(",")
            else:
                requirements.append(requirement)
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _distributions(imports: set[str]) -> dict[str, set[str]]:
    mapping = packages_distributions()
    return {name: {d.lower().replace("_", "-") for d in mapping.get(name, [name])} for name in imports}


@pytest.mark.parametrize(
    ("dockerfile", "packages", "extras", "modules"),
    [
        (
            "gateway/Dockerfile",
            ["gateway", "triton_steps", "triton_control", "stub_health"],
            ["gateway"],
            [
                "gateway/*.py",
                "triton_control/*.py",
                "triton_steps/metadata.py",
                "triton_steps/contract.py",
                "triton_steps/audio.py",
                "triton_steps/__init__.py",
                "stub_health/detect.py",
                "stub_health/recovery.py",
            ],
        ),
        (
            "docker/triton.Dockerfile",
            ["triton_steps", "model_store", "triton_control", "stub_health"],
            ["steps", "store"],
            [
                "triton_steps/audio.py",
                "triton_steps/features.py",
                "triton_steps/spectral.py",
                "triton_steps/scores.py",
                "triton_steps/preprocess_model.py",
                "triton_steps/postprocess_model.py",
                "triton_steps/triton_io.py",
                "model_store/*.py",
                "triton_control/*.py",
                "stub_health/*.py",
            ],
        ),
        (
            "docker/triton-cpu.Dockerfile",
            ["triton_steps", "model_store", "triton_control", "stub_health", "local_triton"],
            ["local"],
            [
                "triton_steps/*.py",
                "model_store/*.py",
                "triton_control/*.py",
                "stub_health/*.py",
                "local_triton/tritonserver.py",
            ],
        ),
        (
            "docker/loader.Dockerfile",
            ["triton_steps", "model_store", "export", "loader"],
            ["loader"],
            ["loader/*.py", "export/*.py", "model_store/*.py", "triton_steps/features.py", "triton_steps/spectral.py"],
        ),
    ],
)
def test_each_image_installs_what_its_code_imports(dockerfile, packages, extras, modules) -> None:
    text = (ROOT / dockerfile).read_text()
    for package in packages:
        assert re.search(rf"^COPY {package} ", text, re.M), f"{dockerfile} does not copy {package}/"
    spec = f'".[{",".join(extras)}]"' if extras else "."
    assert f"pip install --no-cache-dir {spec}" in text
    files = [f for pattern in modules for f in ROOT.glob(pattern)]
    declared = _declared(*extras)
    for module, distributions in _distributions(_third_party_imports(files)).items():
        assert distributions & declared, f"{module} is imported but {dockerfile} does not install it"


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".run", ".git", "tests", "model_repository"} <= set(ignored)


@pytest.mark.parametrize(
    "dockerfile",
    ["gateway/Dockerfile", "docker/triton.Dockerfile", "docker/triton-cpu.Dockerfile", "docker/loader.Dockerfile"],
)
def test_images_are_labelled_and_leave_no_pip_cache(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    for label in ("vendor", "title", "description", "licenses"):
        assert f"org.opencontainers.image.{label}=" in text
    assert 'org.opencontainers.image.vendor="hf-audio-triton"' in text  # compose.sh down prunes by it
    assert all("--no-cache-dir" in line for line in text.splitlines() if "pip install" in line)


@pytest.mark.parametrize(
    "dockerfile", ["gateway/Dockerfile", "docker/triton.Dockerfile", "docker/triton-cpu.Dockerfile"]
)
def test_serving_images_run_as_a_non_root_user(dockerfile: str) -> None:
    users = re.findall(r"^USER (\S+)$", (ROOT / dockerfile).read_text(), re.M)
    assert users and users[-1] not in {"root", "0"}


def test_cpu_image_lays_out_the_server_as_local_mode_does() -> None:
    """One source of truth for the backends folder: the image runs local_triton's own layout code, and the
    pinned wheel from the file the Makefile installs."""
    text = (ROOT / "docker/triton-cpu.Dockerfile").read_text()
    assert "python -m local_triton install /opt/tritonserver" in text
    assert "-r local_triton/tritonserver-wheel.txt" in text
    assert "-r local_triton/tritonserver-wheel.txt" in (ROOT / "Makefile").read_text()


def test_the_gateway_opens_audio_with_the_steps_own_pinned_decoder() -> None:
    """The gateway learns what a clip costs to decode from the decoder's own demuxers (gateway.decode_cost):
    the same pinned PyAV as the steps', so both read every header alike (about 100 MB in its image)."""
    pins = {
        extra: [r for r in PYPROJECT["project"]["optional-dependencies"][extra] if re.match(r"av\b", r)]
        for extra in ("gateway", "steps")
    }
    assert pins["gateway"] == pins["steps"] and len(pins["steps"]) == 1 and "==" in pins["steps"][0]


def _compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # podman-compose from this environment
    return subprocess.run(
        [str(ROOT / "scripts" / "compose.sh"), *args],
        env={**os.environ, "PATH": path, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _podman_network_backend() -> str:
    if _compose("engine").stdout.strip() != "podman":
        pytest.skip("podman is not the container engine here")
    return subprocess.run(["podman", "info", "--format", "{{.Host.NetworkBackend}}"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def test_compose_checks_that_containers_resolve_each_other_before_anything_starts(tmp_path: Path) -> None:
    """Without podman's DNS plugin (here: its folders pointed at an empty one) `up` stops within seconds, naming
    the package, instead of waiting its whole timeout for a gateway that cannot find triton."""
    backend = _podman_network_backend()
    package = "aardvark-dns" if backend == "netavark" else "golang-github-containernetworking-plugin-dnsname"
    assert _compose("dns").returncode == 0  # this machine has it
    project = f"dns-check-{os.getpid()}"
    empty = {"PODMAN_HELPER_DIRS": str(tmp_path), "CNI_PLUGIN_DIRS": str(tmp_path), "COMPOSE_PROJECT_NAME": project}
    for install in ("0", "1"):  # refused at once; or installed with apt (as root), which cannot help here
        started = time.monotonic()
        refused = _compose("up", COMPOSE_INSTALL_MISSING=install, **empty)
        assert refused.returncode == 1 and f"install the Debian package {package}" in refused.stderr
        assert time.monotonic() - started < 60  # not COMPOSE_WAIT_S (600 s)
    listed = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True)
    assert project not in listed.stdout  # nothing was built or started
