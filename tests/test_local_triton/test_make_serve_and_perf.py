"""`make serve`, run as a user runs it (through make), against a real tritonserver (`make perf`: the README's
line, in tests/e2e/test_default_model.py)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
import tiny_checkpoints
from helpers import (
    alive,
    make_command,
    make_waveform,
    pids_mentioning,
    read_until,
    read_until_ready,
    serve_command,
    wav_bytes,
)
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from triton_steps.contract import StepNames

ROOT = Path(__file__).resolve().parents[2]


def _make(*args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(make_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _make_serve(repository: Path, workdir: Path, *extra: str, **kwargs) -> tuple[subprocess.Popen[str], dict]:
    """``make serve`` in its own session (a test can signal the whole group): the process and its ports."""
    command, ports = serve_command(repository, workdir, *extra)
    serve = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, **kwargs
    )
    return serve, ports


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _shm() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("triton_*_backend_shm_region_*")}


def _regions_of(workdir: Path) -> set[str]:
    """The shared-memory regions of the live stubs of the tritonserver running in ``workdir``: each stub's
    command line names its region. (Only these: the other pytest-xdist worker's servers have regions too, and
    its tests kill stubs, whose regions stay until their server sweeps them.)"""
    return {psutil.Process(pid).cmdline()[2] for pid in pids_mentioning("triton_python_backend_stub", str(workdir))}


def _processes_mentioning(text: str) -> list[str]:
    return [str(pid) for pid in pids_mentioning(text)]


EXPORT_ONLY = ("torch", "transformers")  # what serving must never import (`make serve` installs neither)
_BLOCK_EXPORT_ONLY = f"""import sys

class _ExportOnly:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {EXPORT_ONLY!r}:
            raise ImportError(f"serving imported {{name}}, which only exporting installs")

sys.meta_path.insert(0, _ExportOnly())
"""


def _without_export_toolchain(tmp_path: Path) -> dict[str, str]:
    """An environment in which every Python process (make serve's, the gateway's, Triton's stubs) fails to
    import torch or transformers, as in a venv that `make serve` installed."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_BLOCK_EXPORT_ONLY)
    return {**os.environ, "PYTHONPATH": str(tmp_path / "site")}


def _requirements_closure(extras: set[str]) -> set[str]:
    """Every distribution that installing the project with ``extras`` pulls in (read from what is installed)."""
    seen: set[str] = set()
    pending = [(ROOT_DISTRIBUTION, frozenset(extras))]
    while pending:
        name, wanted = pending.pop()
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            active = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (wanted or {""})
            )
            key = canonicalize_name(requirement.name)
            if not active:
                continue
            if key == canonicalize_name(ROOT_DISTRIBUTION):  # a self-reference: more of the project's extras
                pending.append((ROOT_DISTRIBUTION, frozenset(requirement.extras)))
            elif key not in seen:
                seen.add(key)
                pending.append((requirement.name, frozenset(requirement.extras)))
    return seen


ROOT_DISTRIBUTION = "hf-audio-triton"


def test_serving_extras_pull_in_no_export_toolchain() -> None:
    """What `make serve` installs (the local and gateway extras, as the Makefile names them) holds neither torch
    nor transformers; exporting's extras do."""
    makefile = (ROOT / "Makefile").read_text()
    serve_extras = re.search(r"^\$\(SERVE_STAMP\):.*?pip install -q -e \"\.\[([a-z,]+)\]\"", makefile, re.M | re.S)
    assert serve_extras, "the Makefile's serving stage installs the project with extras"
    serving = _requirements_closure(set(serve_extras.group(1).split(",")))
    assert {"fastapi", "onnxruntime", "tritonclient", "av"} <= serving
    assert not serving & set(EXPORT_ONLY), sorted(serving & set(EXPORT_ONLY))
    assert set(EXPORT_ONLY) <= _requirements_closure({"export"})


def _ctrl_c(serve: subprocess.Popen[str]) -> None:
    os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in the terminal does: the whole group


def _term_to_make(serve: subprocess.Popen[str]) -> None:
    os.kill(serve.pid, signal.SIGTERM)  # what a service manager or a script does: make's PID alone


@pytest.mark.parametrize("stop", [_ctrl_c, _term_to_make], ids=["ctrl-c", "sigterm-to-make"])
def test_make_serve_classifies_then_stops_cleanly(repository: Path, tmp_path: Path, stop) -> None:
    """Without torch and transformers importable anywhere: serving needs neither. (One exported model, AST,
    copied from the shared repository: the point is make serve's start and stop, not loading them all.)"""
    workdir = tmp_path / "serve-run"
    served = tmp_path / "repository"
    for step in StepNames("ast").all():
        shutil.copytree(repository / step, served / step)
    # started as a script's background job is, with SIGINT ignored: Ctrl-C must stop it all the same
    serve, ports = _make_serve(
        served, workdir, "DEFAULT_MODEL=ast", env=_without_export_toolchain(tmp_path), preexec_fn=_ignore_sigint
    )
    try:
        read_until_ready(serve)
        url = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
        assert httpx.get(f"{url}/ready").status_code == 200
        answer = httpx.post(f"{url}/", content=wav_bytes(make_waveform()))
        assert answer.status_code == 200 and len(answer.json()) == 7
        regions = _regions_of(workdir)
        assert regions
        started = time.monotonic()
        stop(serve)
        output, _ = serve.communicate(timeout=60)
        assert time.monotonic() - started < 20, "stopping took too long"
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    assert "stopped." in output
    assert _processes_mentioning(str(workdir)) == []
    assert not regions & _shm()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ports['GATEWAY_PORT']}/health")


def test_make_serve_restarts_a_killed_tritonserver_and_gateway_and_leaves_nothing_behind(tmp_path: Path) -> None:
    workdir = tmp_path / "serve-run"
    serve, ports = _make_serve(ROOT / "model_repository", workdir)
    url = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
    clip = (ROOT / "samples" / "yes.wav").read_bytes()
    try:
        read_until_ready(serve)
        expected = httpx.post(f"{url}/", content=clip).json()
        (server,) = pids_mentioning("bin/tritonserver", str(workdir))
        stubs = pids_mentioning("triton_python_backend_stub", str(workdir))
        # each stub's command line names its shared-memory region
        shm_of_server = _regions_of(workdir)
        assert stubs and shm_of_server <= _shm()
        os.kill(server, signal.SIGKILL)  # what the OOM killer does
        killed = time.monotonic()
        statuses = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            answer = httpx.post(f"{url}/", content=clip, timeout=30)
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                break
            assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
            time.sleep(0.2)
        assert statuses[-1] == 200 and 503 in statuses, statuses
        print(f"tritonserver killed: answering again after {time.monotonic() - killed:.1f}s, {len(statuses) - 1} x 503")
        assert answer.json() == expected
        assert not any(alive(pid) for pid in stubs)  # the dead server's stubs are gone ...
        assert not (shm_of_server & _shm())  # ... and so are their shared-memory regions
        assert pids_mentioning("bin/tritonserver", str(workdir)) != [server]

        # The gateway too is supervised: restarted when it dies. This one is the gateway on this port.
        port = str(ports["GATEWAY_PORT"])
        gateways = pids_mentioning("-m\0gateway")
        (gateway,) = [p for p in gateways if psutil.Process(p).environ().get("GATEWAY_PORT") == port]
        os.kill(gateway, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.post(f"{url}/", content=clip, timeout=30)
                if answer.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the gateway did not come back"
            time.sleep(0.2)
        print(f"gateway killed: answering again after {time.monotonic() - killed:.1f}s")
        assert answer.json() == expected
        shm_of_restarted = _regions_of(workdir)
        assert shm_of_restarted and not shm_of_restarted & shm_of_server
        # The new gateway can answer before the launcher's own readiness poll sees it and says so: a Ctrl-C in
        # between would cut that line short. Wait for it (and so for the supervisor's view), then stop.
        said = "".join(read_until(serve, lambda line: "the gateway restarted" in line))
        os.killpg(serve.pid, signal.SIGINT)
        output, _ = serve.communicate(timeout=60)
        output = said + output
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
    assert "tritonserver restarted" in output and "the gateway restarted" in output and "stopped." in output
    assert _processes_mentioning(str(workdir)) == []
    assert not shm_of_restarted & _shm()


def test_make_serve_with_gateway_autoload_exports_a_hub_id_on_first_request(tmp_path: Path) -> None:
    """GATEWAY_AUTOLOAD in make serve's environment starts the loader beside the gateway: a Hub id from an HF
    cache laid out by hand (offline) is exported, loaded and answered, and the default model still serves."""
    tiny_checkpoints.build("wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(tmp_path / "hf" / "hub", "org/kws"))
    repository = tmp_path / "model_repository"
    shutil.copytree(ROOT / "model_repository", repository)
    env = dict(os.environ, GATEWAY_AUTOLOAD="org/*", HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    serve, ports = _make_serve(repository, tmp_path / "run", env=env)
    url = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
    clip = (ROOT / "samples" / "yes.wav").read_bytes()
    try:
        lines = read_until_ready(serve)
        assert any("on-demand loading of org/*" in line for line in lines), lines
        cold = httpx.post(f"{url}/models/org/kws", content=clip, timeout=30)
        assert cold.status_code == 503 and cold.json()["error"] == "Model org/kws is currently loading"
        answer = httpx.post(f"{url}/models/org/kws", content=clip, headers={"X-Wait-For-Model": "true"}, timeout=300)
        assert answer.status_code == 200 and len(answer.json()) == len(tiny_checkpoints.LABELS), answer.text
        assert httpx.post(f"{url}/", content=clip, timeout=30).json()[0]["label"] == "yes"
        assert httpx.post(f"{url}/models/elsewhere/kws", content=clip, timeout=30).status_code == 404
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        serve.communicate(timeout=60)
    assert _processes_mentioning(str(tmp_path / "run")) == []
    with pytest.raises(httpx.ConnectError):  # the loader stopped with the rest
        httpx.get(f"http://127.0.0.1:{ports['LOADER_PORT']}/health")


def test_make_serve_stops_at_once_naming_a_port_in_use(tmp_path: Path) -> None:
    """A busy gateway port is reported before tritonserver starts, not once it is up (it used to take 35 s)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        command, _ = serve_command(ROOT / "model_repository", tmp_path / "run")
        command = [arg for arg in command if not arg.startswith("GATEWAY_PORT=")] + [f"GATEWAY_PORT={busy}"]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        took = time.monotonic() - started
    assert done.returncode != 0
    assert f"ports in use: GATEWAY_PORT {busy}" in done.stdout + done.stderr
    assert not (tmp_path / "run" / "tritonserver.log").exists()  # tritonserver was never started
    print(f"make serve with a busy port stopped after {took:.1f} s")
