"""Helpers the tests share (imported as ``helpers``; fixtures live in ``conftest``)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import soundfile
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from export import engine_choice
from local_triton.services import GatewayProcess
from local_triton.tritonserver import free_port
from triton_control import TritonControl
from triton_steps import contract, engines

ROOT = Path(__file__).resolve().parents[1]

TOLERANCE = 1e-4  # served scores vs transformers' pipeline: the project's exactness bar
# Extra exports beyond one per architecture: transformers' other function_to_apply defaults.
PROBLEM_TYPES = {"w2v_multilabel": "multi_label_classification", "w2v_regression": "regression"}
RATE_8K = "w2v_8khz"  # a tiny checkpoint whose extractor runs at 8 kHz
# --quantize bf16 exports and serves only on a CPU with bf16 instructions; elsewhere its refusal is what is tested
CPU_HAS_BF16 = engines.BF16_CAPABILITY in engines.cpu_capabilities()
NO_BF16_CPU = ["WINOGRAD", "FP32", "INT8", "BIN"]  # OpenVINO's capabilities on a CPU without bf16


def engines_timed(bf16_ms: float, fp32_ms: float) -> Callable[..., dict[str, float]]:
    """A stand-in for ``export.engine_choice.fastest`` that reports these times instead of measuring: whether
    bf16 is faster than fp32 depends on the CPU (faster on an AMD EPYC with AVX512-BF16, slower on an Intel
    Xeon without AMX), and a test of something else must not."""

    def fastest(candidates: dict[str, engine_choice.Candidate], workloads: object, threads: int) -> dict[str, float]:
        return {label: bf16_ms if c.precision == engines.BF16 else fp32_ms for label, c in candidates.items()}

    return fastest


def wait_until(
    condition: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.01, what: str = ""
) -> object:
    """Poll ``condition`` until it returns something true (returned), failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what or condition} not within {timeout_s:g} s"
        time.sleep(interval_s)
    return result


def pids_mentioning(*texts: str) -> list[int]:
    """Live processes whose command line holds every one of ``texts``."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = "\0".join(process.info["cmdline"] or [])
        if command and all(text in command for text in texts):
            found.append(process.info["pid"])
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of ``pid`` (``VmHWM``, which psutil does not report), in MB; 0 once gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def assert_same(served: list, reference: list[dict], tolerance: float = TOLERANCE) -> None:
    """Served predictions (dicts, ``Prediction``s or (label, score) pairs) equal transformers' pipeline's:
    the same labels in the same order, scores within ``tolerance``."""
    pairs = [
        (s["label"], s["score"]) if isinstance(s, dict) else (s.label, s.score) if hasattr(s, "label") else tuple(s)
        for s in served
    ]
    assert [label for label, _ in pairs] == [r["label"] for r in reference]
    np.testing.assert_allclose([score for _, score in pairs], [r["score"] for r in reference], atol=tolerance, rtol=0)


# The Makefile's stamps, serving's, exporting's, testing's: touched in that order, none is made again.
INSTALL_STAMPS = (".installed-serve", ".installed-export", ".installed")


def documents() -> list[Path]:
    """The user's documentation: the README, then docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def mark_installed(venv: Path) -> None:
    """Mark ``venv`` (``make install`` made it) as installed for every Makefile verb."""
    for stamp in INSTALL_STAMPS:
        (venv / "bin" / stamp).touch(exist_ok=True)


def make_command(*args: str) -> list[str]:
    """``make ARGS`` in the repository, with the tests' environment as the Makefile's (``make install`` made
    it: marked installed, it is not made again)."""
    venv = Path(sys.prefix)
    mark_installed(venv)
    return ["make", "--no-print-directory", "-C", str(ROOT), f"VENV={venv}", *args]


def serve_command(repository: object, workdir: Path, *extra: str) -> tuple[list[str], dict[str, int]]:
    """``make serve`` of ``repository`` on free ports: the command, and its ports by Makefile name."""
    names = ("HTTP_PORT", "GRPC_PORT", "METRICS_PORT", "GATEWAY_PORT", "LOADER_PORT")
    ports = {name: free_port() for name in names}
    settings = [f"REPOSITORY={repository}", f"WORKDIR={workdir}", *extra, *(f"{k}={v}" for k, v in ports.items())]
    return make_command("serve", *settings), ports


def model_name(architecture: str) -> str:
    return architecture.replace("-", "_")


def read_until(serve: subprocess.Popen[str], wanted: Callable[[str], bool], timeout: float = 60) -> list[str]:
    """The lines ``make serve`` printed up to the first ``wanted`` one; fails showing them all if it stopped
    (or went quiet past ``timeout``) first."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines.append(serve.stdout.readline())
        if not lines[-1] or wanted(lines[-1]):
            break
    assert lines and wanted(lines[-1]), "".join(lines)
    return lines


def read_until_ready(serve: subprocess.Popen[str], timeout: float = 240) -> list[str]:
    """The lines ``make serve`` printed up to its "ready: URL" line (``read_until``)."""
    return read_until(serve, lambda line: line.startswith("ready: "), timeout)


@dataclass
class TritonLaunch:
    """What a container's ``sh -c`` line hands tritonserver: its arguments and its environment."""

    arguments: list[str]
    environment: dict[str, str]


def triton_launch(shell_line: str, environment: dict[str, str], tmp_path: Path) -> TritonLaunch:
    """Run a container's ``sh -c`` line for real, with a stand-in ``tritonserver`` that prints its arguments and
    its environment, and this interpreter as ``python3``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "tritonserver").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\necho "--env--"\nenv\n')
    (bin_dir / "tritonserver").chmod(0o755)
    # a link would lose the venv; the model sync a line starts beside the server is not run here
    (bin_dir / "python3").write_text(
        f'#!/bin/sh\n[ "$1 $2 $3" = "-m model_store sync" ] && exit 0\nexec "{sys.executable}" "$@"\n'
    )
    (bin_dir / "python3").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", **environment}
    done = subprocess.run(["sh", "-c", shell_line], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    lines = done.stdout.splitlines()
    split = lines.index("--env--")
    variables = dict(line.partition("=")[::2] for line in lines[split + 1 :] if "=" in line)
    return TritonLaunch(lines[:split], variables)


def triton_arguments(shell_line: str, environment: dict[str, str], tmp_path: Path) -> list[str]:
    """The arguments a container's ``sh -c`` line hands tritonserver (``triton_launch``)."""
    return triton_launch(shell_line, environment, tmp_path).arguments


def make_waveform(seconds: float = 1.3, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """A deterministic speech-like test signal: harmonics with vibrato, plus noise."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2 + rng.standard_normal(len(t)) * 0.02
    return signal.astype(np.float32)


def wav_bytes(waveform: np.ndarray, rate: int = 16000, subtype: str = "FLOAT", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform, rate, subtype=subtype, format=fmt)
    return buffer.getvalue()


def assert_client_batches_refused(grpc_url: str, model: str, clips: int) -> None:
    """A client batch (AUDIO of shape [N, 1], as ``perf_analyzer -b N`` sends) gets one response: it was answered
    for its first clip and the others were dropped; it must be refused, saying why. One clip in that form is
    answered as TritonControl's one-clip request is."""

    def send(batch: list[bytes]) -> grpcclient.InferResult:
        audio = grpcclient.InferInput(contract.AUDIO.name, [len(batch), 1], "BYTES")
        audio.set_data_from_numpy(np.array([[clip] for clip in batch], dtype=np.object_))
        with grpcclient.InferenceServerClient(grpc_url) as client:
            return client.infer(model, [audio])

    clip = wav_bytes(make_waveform(1.0, seed=3))
    with TritonControl(grpc_url) as control:
        expected = control.classify(model, clip)
    result = send([clip])
    assert [label.decode() for label in result.as_numpy(contract.LABELS.name)[0]] == [label for label, _ in expected]
    np.testing.assert_allclose(result.as_numpy(contract.SCORES.name)[0], [s for _, s in expected], atol=1e-6)
    try:
        send([clip] * clips)
    except InferenceServerException as error:
        assert error.status() == "StatusCode.INVALID_ARGUMENT"
        assert f"a request classifies one clip, and its AUDIO holds {clips}" in error.message()
    else:
        raise AssertionError(f"a request of {clips} clips was answered")


@contextlib.contextmanager
def running_gateway(triton_grpc_url: str, **settings: str) -> Iterator[str]:
    """A real gateway process (``python -m gateway``) on a free port, only these settings (none from the
    environment); yields its base URL."""
    with tempfile.TemporaryDirectory() as logs:
        process = GatewayProcess(triton_grpc_url, free_port(), Path(logs) / "gateway.log", **settings)
        with process:
            yield process.url
