"""The README's and docs/'s shell, Python and JavaScript blocks: each is run as written by a test, or says here
why it cannot run on these machines and what runs instead. A new block without a tag listed here fails, and so
does a link to a file or section that is not there."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import soundfile
import tiny_checkpoints
from helpers import documents, free_port, mark_installed, read_until_ready, wav_bytes

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(bash|python|sh|js)\b *(\S*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")

RUN_BY = {  # the block's tag -> the test that runs it as written
    "example": "tests/e2e/test_default_model.py: test_readme_curl_examples, test_readme_python_example, "
    "test_readme_js_example",
    "perf": "tests/e2e/test_default_model.py: test_readme_make_perf_command",
    "export": "this file: test_readme_export_lines_then_make_serve_keeps_the_default_model",
    "chunk": "this file: test_readme_export_lines_then_make_serve_keeps_the_default_model",
    "stream": "tests/e2e/test_live_streams.py: test_readme_stream_client",
}
NOT_RUN_AS_WRITTEN = {  # the block's tag -> why, and what runs instead
    "quickstart": "`make test` is this suite; `make serve` runs in tests/test_local_triton on free ports",
    "s3": "needs AWS credentials; tests/e2e/test_s3_repository.py runs the same export and make serve on moto",
    "compose": "no GPU nor Docker engine here; make compose-test runs make compose-up's script (CPU variant, "
    "podman) and tests/test_deploy/test_compose_and_images.py validates the files",
    "k8s": "no cluster here; tests/test_deploy/test_kubernetes.py renders and validates the overlays",
    "autoload": "needs the Hub; tests/test_local_triton/test_make_serve_and_perf.py runs make serve with "
    "GATEWAY_AUTOLOAD on an HF cache laid out by hand (HF_HUB_OFFLINE=1), cold 503 then X-Wait-For-Model",
    "train": "about 26 minutes; tests/test_keyword_spotter/test_train.py runs the same script at toy size",
}


def readme_blocks() -> list[tuple[str, str]]:
    """(tag, code) of every shell, Python and JavaScript block of the README and docs/."""
    return [(tag, code) for document in documents() for _, tag, code in BLOCK.findall(document.read_text())]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_resolves() -> None:
    """Relative links name a file that exists and, with a #section, a heading it has."""
    for document in documents():
        for target in LINK.findall(document.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, section = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            assert linked.exists(), f"{document.relative_to(ROOT)}: {target}"
            if section:
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
                assert section in {_anchor(h) for h in headings}, f"{document.relative_to(ROOT)}: {target}"


def test_the_readme_fits_a_screen_and_docs_hold_the_rest() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    linked = set(re.findall(r"\]\(docs/([a-z-]+\.md)\)", readme))
    assert linked == {document.name for document in documents()[1:]}, "every document is linked from the README"


def test_every_readme_block_is_run_or_says_why_not() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 10
    for tag, code in blocks:
        assert tag in RUN_BY or tag in NOT_RUN_AS_WRITTEN, f"README block without a known tag:\n{code}"
    assert {tag for tag, _ in blocks} == set(RUN_BY) | set(NOT_RUN_AS_WRITTEN)


def _block(tag: str) -> list[str]:
    """The commands of the README block ``tag``, without their trailing comments."""
    (code,) = [code for t, code in readme_blocks() if t == tag]
    return [line.split("  #")[0].strip() for line in code.splitlines() if line.strip()]


def _hub_cache(root: Path, repo_id: str) -> Path:
    """An HF cache laid out by hand, as ``snapshot_download`` leaves it, holding a tiny checkpoint as
    ``repo_id``: the exporter loads it through the real Hub code path with ``HF_HUB_OFFLINE=1``."""
    tiny_checkpoints.build("wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(root / "hub", repo_id))
    return root


def _run(command: str, cwd: Path, env: dict[str, str], venv: Path) -> subprocess.CompletedProcess[str]:
    if command.startswith("make "):
        command += f" VENV={venv}"  # the environment running the tests is the one `make install` made
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_readme_export_lines_then_make_serve_keeps_the_default_model(tmp_path: Path) -> None:
    """A new user's walk: in a checkout holding the shipped repository, the README's export lines as written
    (a Hub id from an offline HF cache, a local folder, --help, the chunked keyword spotter), then `make
    serve` with a token in the environment: the token is enforced, `POST /` is still the keyword spotter,
    every exported model answers, and a long recording shows the 1 s window the README describes."""
    venv = Path(sys.prefix)
    mark_installed(venv)
    for name in ("Makefile", "pyproject.toml", "scripts", "keyword_spotter", "samples", "local_triton"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / ".venv").symlink_to(venv)
    shutil.copytree(ROOT / "model_repository", tmp_path / "model_repository", ignore=shutil.ignore_patterns("__py*"))
    tiny_checkpoints.build("ast", tmp_path / "my-checkpoint")
    env = {
        **os.environ,
        "HF_HOME": str(_hub_cache(tmp_path / "hf", "superb/wav2vec2-base-superb-ks")),
        "HF_HUB_OFFLINE": "1",
    }
    for command in _block("export") + _block("chunk"):
        result = _run(command, tmp_path, env, venv)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        if "--help" in command:  # every flag of the README's table is one the exporter has
            readme_flags = re.findall(r"^\| `(--[a-z-]+)`", (ROOT / "docs" / "export.md").read_text(), re.M)
            assert len(readme_flags) > 10 and all(flag in result.stdout for flag in readme_flags)

    ports = {name: free_port() for name in ("HTTP_PORT", "GRPC_PORT", "METRICS_PORT", "GATEWAY_PORT")}
    serve = subprocess.Popen(
        ["make", "--no-print-directory", "serve", f"VENV={venv}", *(f"{k}={v}" for k, v in ports.items())],
        cwd=tmp_path,
        env={**env, "GATEWAY_API_TOKEN": "secret"},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        read_until_ready(serve, timeout=300)
        url = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
        yes = (ROOT / "samples" / "yes.wav").read_bytes()
        refused = httpx.post(f"{url}/", content=yes)
        assert refused.status_code == 401 and "error" in refused.json()  # GATEWAY_API_TOKEN reached the gateway
        auth = {"Authorization": "Bearer secret"}
        answer = httpx.post(f"{url}/", content=yes, headers=auth, timeout=60)
        assert answer.status_code == 200 and answer.json()[0]["label"] == "yes", answer.text
        for model_id in ("superb/wav2vec2-base-superb-ks", "kws"):
            answer = httpx.post(f"{url}/models/{model_id}", content=yes, headers=auth, timeout=60)
            assert answer.status_code == 200, answer.text
            assert sorted(p["label"] for p in answer.json()) == sorted(tiny_checkpoints.LABELS)

        # 100 s whose first second is "yes", then quiet noise: the default model hears only that second.
        spoken, rate = soundfile.read(ROOT / "samples" / "yes.wav", dtype="float32")
        assert rate == 16000
        noise = np.random.default_rng(0).normal(0, 1e-3, 100 * rate).astype(np.float32)
        noise[: len(spoken)] = spoken
        long_clip = wav_bytes(noise)
        answer = httpx.post(f"{url}/", content=long_clip, headers=auth, timeout=60)
        assert answer.status_code == 200 and answer.json()[0]["label"] == "yes", answer.text
        chunked = httpx.post(f"{url}/models/keyword-spotter-chunked", content=long_clip, headers=auth, timeout=60)
        assert chunked.status_code == 200, chunked.text
        assert chunked.json()[0]["label"] != "yes"  # 199 windows of quiet outvote the one with the word
        os.killpg(serve.pid, signal.SIGINT)
        output, _ = serve.communicate(timeout=60)
        assert "stopped." in output
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
