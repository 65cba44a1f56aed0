"""docker-compose.yml and the Dockerfiles, checked statically (no Docker engine runs on these machines)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROVIDED_BY_TRITON = {"triton_python_backend_utils"}


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as docker-compose itself normalises it (this also validates it)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is missing: scripts/install-system-packages.sh installs it")
    result = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_triton_service(compose: dict) -> None:
    triton = compose["services"]["triton"]
    dockerfile = (ROOT / triton["build"]["dockerfile"]).read_text()
    assert re.search(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", dockerfile)
    assert any(v["target"] == "/models" and v["source"].endswith("model_repository") for v in _volumes(triton))
    assert "--model-repository=/models" in triton["command"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    assert "ports" not in triton  # only the gateway is published


def test_gateway_service(compose: dict) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["build"]["dockerfile"] == "gateway/Dockerfile"
    assert [p["target"] for p in gateway["ports"]] == [8080]
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    assert gateway["environment"]["GATEWAY_TRITON_URL"] == "triton:8001"  # Triton's default gRPC port


def _volumes(service: dict) -> list[dict]:
    return [v if isinstance(v, dict) else dict(zip(("source", "target"), v.split(":")[:2], strict=True)) for v in
            service.get("volumes", [])]  # fmt: skip


def _third_party_imports(files: list[Path]) -> set[str]:
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    local = {"gateway", "triton_steps", "export", "local_triton"}
    return {n for n in names if n not in sys.stdlib_module_names and n not in local | PROVIDED_BY_TRITON}


def _declared(*extras: str) -> set[str]:
    requirements = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        requirements += PYPROJECT["project"]["optional-dependencies"][extra]
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _distributions(imports: set[str]) -> dict[str, set[str]]:
    mapping = packages_distributions()
    return {name: {d.lower().replace("_", "-") for d in mapping.get(name, [name])} for name in imports}


@pytest.mark.parametrize(
    ("dockerfile", "packages", "extras", "modules"),
    [
        ("gateway/Dockerfile", ["gateway", "triton_steps"], ["gateway"],
         ["gateway/*.py", "triton_steps/metadata.py", "triton_steps/__init__.py"]),
        ("docker/triton.Dockerfile", ["triton_steps"], [],
         ["triton_steps/audio.py", "triton_steps/features.py", "triton_steps/spectral.py", "triton_steps/scores.py",
          "triton_steps/preprocess_model.py", "triton_steps/postprocess_model.py", "triton_steps/triton_io.py"]),
    ],
)  # fmt: skip
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
    assert {".venv", ".run", ".git", "model_repository"} <= set(ignored)
