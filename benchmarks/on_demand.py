"""``make bench-on-demand``: a Hub id never exported, served on first request (GATEWAY_AUTOLOAD), at real size.

Two wav2vec2-base checkpoints (95M parameters, random weights) sit in an HF cache laid out by hand under Hub
ids (the Hub is unreachable here; HF_HUB_OFFLINE=1 takes the same snapshot_download path). With room for one
on-demand model, it measures: the loading answer (its estimated_time, and how fast it comes), the time from
the first request to the first answer (export, parity gate, load), a second id (export, and the first one
unloaded), and the first id again (loaded back from the repository, no export). Side by side, the competitor:
transformers' pipeline() built from the same cache, and its first answer.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks import real_size_models
from benchmarks.stack import served
from local_triton.services import LoaderProcess
from local_triton.tritonserver import free_port
from triton_steps.audio import load

ROOT = Path(__file__).resolve().parents[1]

REVISION = "0123456789abcdef0123456789abcdef01234567"
IDS = ("superb/wav2vec2-base-superb-ks", "superb/wav2vec2-base-superb-er")


def _cache(root: Path) -> dict[str, Path]:
    folders = {}
    for seed, repo_id in enumerate(IDS):
        model = root / "hub" / f"models--{repo_id.replace('/', '--')}"
        (model / "refs").mkdir(parents=True)
        (model / "refs" / "main").write_text(REVISION)
        folders[repo_id] = real_size_models.build("wav2vec2-base", model / "snapshots" / REVISION, seed=seed)
    return folders


def _timed_wait(url: str, audio: bytes) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    answer = httpx.post(url, content=audio, headers={"X-Wait-For-Model": "true"}, timeout=900)
    return time.monotonic() - started, answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "on_demand.json")
    args = parser.parse_args()
    audio = (ROOT / "samples" / "yes.wav").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("building two wav2vec2-base checkpoints (random weights) into an HF cache ...", flush=True)
        folders = _cache(work / "hf")
        weights = sum(p.stat().st_size for p in folders[IDS[0]].glob("*.safetensors"))
        repository = work / "model_repository"
        shutil.copytree(ROOT / "model_repository", repository)  # the default model, as make serve has it
        loader = LoaderProcess(
            str(repository), free_port(), work / "loader.log", HF_HOME=str(work / "hf"), HF_HUB_OFFLINE="1"
        )
        results: dict[str, float] = {"weight_mb": round(weights / 1e6, 1)}
        settings = {"autoload": "superb/*", "loader_url": loader.url, "max_loaded_models": "1"}
        with loader, served(repository, work / "run", **settings) as (_, gateway):
            first = f"{gateway.url}/models/{IDS[0]}"
            started = time.monotonic()
            cold = httpx.post(first, content=audio, timeout=60)
            results["loading_answer_s"] = round(time.monotonic() - started, 3)
            results["estimated_time_s"] = cold.json().get("estimated_time", float("nan"))
            print(f"first request: {cold.status_code} {cold.json()} in {results['loading_answer_s']:.2f}s", flush=True)
            seconds, answer = _timed_wait(first, audio)
            assert answer.status_code == 200, answer.text
            results["first_answer_s"] = round(time.monotonic() - started, 1)
            print(f"first answer {results['first_answer_s']:.1f}s after the first request", flush=True)
            seconds, answer = _timed_wait(f"{gateway.url}/models/{IDS[1]}", audio)
            assert answer.status_code == 200, answer.text
            results["second_id_first_answer_s"] = round(seconds, 1)
            print(f"second id (export, the first unloaded): {seconds:.1f}s", flush=True)
            seconds, answer = _timed_wait(first, audio)
            assert answer.status_code == 200, answer.text
            results["reload_after_eviction_s"] = round(seconds, 1)
            print(f"first id again (loaded from the repository): {seconds:.1f}s", flush=True)
            jobs = httpx.get(f"{loader.url}/jobs", timeout=10).json()
            results["exports"] = len([j for j in jobs if j["state"] == "exported"])
        started = time.monotonic()
        from transformers import pipeline

        classifier = pipeline("audio-classification", model=str(folders[IDS[0]]), device="cpu")
        classifier(load(audio, 16000).astype(np.float32))
        results["pipeline_first_answer_s"] = round(time.monotonic() - started, 1)
    results["ratio_first_answer_vs_pipeline"] = round(results["first_answer_s"] / results["pipeline_first_answer_s"], 1)
    print(json.dumps(results, indent=2))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
