"""Any Hub id on demand (GATEWAY_AUTOLOAD): a real loader exporting from an HF cache laid out by hand
(HF_HUB_OFFLINE=1, the same snapshot_download path as the Hub), a real tritonserver, a real gateway."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import tiny_checkpoints
import torch
import transformers
from browser import RESULTS, chromium, needs_chromium
from helpers import ROOT, TOLERANCE, make_waveform, running_gateway, wav_bytes
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from transformers import pipeline

from export.exporter import ExportOptions, export_model
from loader.jobs import triton_name
from local_triton.services import LoaderProcess
from local_triton.tritonserver import LocalTriton, Ports, free_port
from stub_health import processes as stub_processes
from triton_control import TritonControl

AUDIO_IDS = ("org/w2v-a", "org/w2v-b", "org/w2v-c")
WAIT = {"X-Wait-For-Model": "true"}
LIMIT = 2


def _hub_cache(root: Path) -> dict[str, Path]:
    folders = {}
    for seed, repo_id in enumerate(AUDIO_IDS):
        folders[repo_id] = tiny_checkpoints.build(
            "wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(root / "hub", repo_id), seed=seed
        )
    pickled = tiny_checkpoints.hub_snapshot(root / "hub", "org/pickle-only")
    tiny_checkpoints.build("wav2vec2-layer-norm", pickled)
    model = transformers.Wav2Vec2ForSequenceClassification.from_pretrained(pickled)
    for weights in pickled.glob("*.safetensors"):
        weights.unlink()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")  # transformers 5 saves only safetensors
    remote = tiny_checkpoints.hub_snapshot(root / "hub", "org/remote-code")
    tiny_checkpoints.build("wav2vec2-layer-norm", remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForAudioClassification": "modeling_custom.CustomModel"}
    (remote / "config.json").write_text(json.dumps(config))
    text = tiny_checkpoints.hub_snapshot(root / "hub", "org/text-classifier")
    bert = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=100
    )
    transformers.BertForSequenceClassification(bert).save_pretrained(text)
    return folders


@dataclass
class Stack:
    gateway: str
    loader: LoaderProcess
    triton: LocalTriton
    checkpoints: dict[str, Path]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, checkpoints) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("on_demand")
    folders = _hub_cache(root / "hf")
    repository = root / "model_repository"
    # One model an operator published: never unloaded, and not counted in the on-demand limit.
    export_model(str(checkpoints["hubert"]), repository, ExportOptions(name="resident"))
    triton = LocalTriton(repository, root / "run", Ports(free_port(), free_port(), free_port()))
    loader = LoaderProcess(
        str(repository), free_port(), root / "loader.log", HF_HOME=str(root / "hf"), HF_HUB_OFFLINE="1"
    )
    settings = {"autoload": "org/*", "loader_url": loader.url, "max_loaded_models": str(LIMIT)}
    with triton, loader, running_gateway(triton.grpc_url, default_model="resident", **settings) as gateway:
        yield Stack(gateway, loader, triton, folders)


def _loader_metric(stack: Stack, outcome: str) -> float:
    text = urllib.request.urlopen(f"{stack.loader.url}/metrics", timeout=10).read().decode()
    match = re.search(rf'^loader_exports_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def _on_demand_loaded(stack: Stack) -> set[str]:
    """The on-demand ensembles Triton has loaded now."""
    with TritonControl(stack.triton.grpc_url) as control:
        index = control.index()
    names = {triton_name(i) for i in AUDIO_IDS}
    return {entry.name for entry in index if entry.name in names and entry.ready}


def _not_loaded(stack: Stack) -> str:
    """An on-demand id Triton has not loaded now: one the tests above evicted (its load is a reload from the
    repository), or, for a test run alone, one never exported (its load is an export)."""
    loaded = _on_demand_loaded(stack)
    return next(i for i in AUDIO_IDS if triton_name(i) not in loaded)


def _post(stack: Stack, model_id: str, audio: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{stack.gateway}/models/{model_id}", content=audio, headers=headers or {}, timeout=400)


def test_a_new_id_gets_the_loading_answer_then_waiting_gets_the_pipelines_scores(stack: Stack) -> None:
    waveform = make_waveform(1.0, seed=3)
    audio = wav_bytes(waveform)
    cold = _post(stack, "org/w2v-a", audio)
    assert cold.status_code == 503, cold.text
    body = cold.json()
    assert body["error"] == "Model org/w2v-a is currently loading"
    assert isinstance(body["estimated_time"], float) and body["estimated_time"] >= 1
    assert int(cold.headers["Retry-After"]) >= 1
    answer = _post(stack, "org/w2v-a", audio, {"x-wait-for-model": "TRUE"})  # any case, as HTTP headers are
    assert answer.status_code == 200, answer.text
    reference = pipeline("audio-classification", model=str(stack.checkpoints["org/w2v-a"]), device="cpu")(waveform)
    served = {p["label"]: p["score"] for p in answer.json()}
    assert [p["label"] for p in answer.json()] == [r["label"] for r in reference]
    np.testing.assert_allclose([served[r["label"]] for r in reference], [r["score"] for r in reference], atol=TOLERANCE)
    listing = {m["id"]: m for m in httpx.get(f"{stack.gateway}/models", timeout=10).json()}
    assert listing["org/w2v-a"]["state"] == "loaded" and listing["resident"]["state"] == "loaded"


def test_concurrent_first_requests_start_one_export(stack: Stack) -> None:
    before = _loader_metric(stack, "exported")
    audio = wav_bytes(make_waveform(1.0, seed=4))
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: _post(stack, "org/w2v-b", audio), range(6)))
    assert {a.status_code for a in answers} == {503}, [a.text for a in answers]
    assert all(a.json()["error"] == "Model org/w2v-b is currently loading" for a in answers)
    assert _post(stack, "org/w2v-b", audio, WAIT).status_code == 200
    assert _loader_metric(stack, "exported") == before + 1
    jobs = httpx.get(f"{stack.loader.url}/jobs", timeout=10).json()
    assert [j["state"] for j in jobs if j["model_id"] == "org/w2v-b"] == ["exported"]


@pytest.mark.parametrize(
    "model_id, status, reason",
    [
        (
            "org/text-classifier",
            422,
            "not an audio-classification checkpoint (architecture BertForSequenceClassification)",
        ),
        ("org/pickle-only", 422, "weights only as pickle (pytorch_model.bin)"),
        ("org/remote-code", 422, "needs trust_remote_code"),
        ("org/no-such-model", 404, "is not in the HF cache"),
    ],
)
def test_refusals_are_clear_and_remembered(stack: Stack, model_id: str, status: int, reason: str) -> None:
    audio = wav_bytes(make_waveform(1.0, seed=5))
    first = _post(stack, model_id, audio, WAIT)  # waiting does not wait out a refusal
    assert first.status_code == status and reason in first.json()["error"], first.text
    second = _post(stack, model_id, audio)
    assert second.status_code == status and second.json()["error"] == first.json()["error"]
    refused = [line for line in stack.loader.log_tail(400).splitlines() if f"{model_id}: refused" in line]
    assert len(refused) == 1, refused  # the second answer came from memory: the checkpoint was not looked at again
    listing = {m["id"]: m for m in httpx.get(f"{stack.gateway}/models", timeout=10).json()}
    assert listing[model_id]["state"] == "failed" and reason in listing[model_id]["error"]


def test_a_fixed_refusal_is_still_remembered_until_it_expires(stack: Stack) -> None:
    """The refusal is answered from memory even once the checkpoint changed (until LOADER_FAILURE_TTL_S)."""
    audio = wav_bytes(make_waveform(1.0, seed=6))
    assert _post(stack, "org/remote-code", audio).status_code == 422
    folder = tiny_checkpoints.hub_snapshot(Path(stack.loader.env["HF_HOME"]) / "hub", "org/remote-code")
    shutil.copy(stack.checkpoints["org/w2v-a"] / "config.json", folder / "config.json")
    assert _post(stack, "org/remote-code", audio).status_code == 422


def test_an_id_outside_the_patterns_is_a_404(stack: Stack) -> None:
    answer = _post(stack, "elsewhere/w2v-a", wav_bytes(make_waveform(1.0)), WAIT)
    assert answer.status_code == 404 and "is not served" in answer.json()["error"]


def test_at_most_the_limit_is_loaded_and_evicted_models_return_without_an_export(stack: Stack) -> None:
    audio = wav_bytes(make_waveform(1.0, seed=7))
    ids = ("org/w2v-a", "org/w2v-b", "org/w2v-c")
    for model_id in ids:  # each exported once (a and b were, by the tests above, when run together)
        assert _post(stack, model_id, audio, WAIT).status_code == 200
    exports = _loader_metric(stack, "exported")
    stubs = []
    for model_id in ids:  # one round-robin over three with room for two: each request evicts
        answer = _post(stack, model_id, audio, WAIT)
        assert answer.status_code == 200, answer.text
        assert len(_on_demand_loaded(stack)) <= LIMIT
        stubs.append(len(stub_processes.find(stack.triton.ports.grpc).pids))
    assert _loader_metric(stack, "exported") == exports  # evicted models came back from the repository
    # Memory stays bounded: the Python-backend processes (the preprocess instances, the network, the
    # postprocess of each model loaded) stop growing.
    per_model = ExportOptions().preprocess_instances + 2
    assert max(stubs) <= (1 + LIMIT) * per_model, stubs
    metrics = httpx.get(f"{stack.gateway}/metrics", timeout=10).text
    evictions = float(re.search(r"^gateway_on_demand_evictions_total (\S+)$", metrics, re.M).group(1))
    assert evictions >= 3 + 1  # every request of the round, and the first exports' third
    listing = {m["id"]: m for m in httpx.get(f"{stack.gateway}/models", timeout=10).json()}
    assert listing["resident"]["state"] == "loaded"
    assert sorted(m["state"] for i, m in listing.items() if i in ids) == ["loaded", "loaded", "unloaded"]


def test_huggingface_hub_inference_client_against_a_cold_model(stack: Stack) -> None:
    """huggingface_hub 2.4 raises on the 503 at once (it no longer retries); with the header HF documents,
    X-Wait-For-Model, the same call waits for the model to load and answers."""
    model_id = _not_loaded(stack)
    audio = wav_bytes(make_waveform(1.0, seed=8))
    with pytest.raises(HfHubHTTPError) as cold:
        InferenceClient(model=f"{stack.gateway}/models/{model_id}").audio_classification(audio)
    assert cold.value.response.status_code == 503
    assert f"Model {model_id} is currently loading" in str(cold.value)
    client = InferenceClient(model=f"{stack.gateway}/models/{model_id}", headers=WAIT, timeout=400)
    predictions = client.audio_classification(audio)
    assert len(predictions) == len(tiny_checkpoints.LABELS)


def test_options_wait_for_model_waits_as_the_header_does(stack: Stack) -> None:

    body = {
        "inputs": base64.b64encode(wav_bytes(make_waveform(1.0, seed=9))).decode(),
        "options": {"wait_for_model": True},
    }
    answer = httpx.post(f"{stack.gateway}/models/{_not_loaded(stack)}", json=body, timeout=400)
    assert answer.status_code == 200, answer.text


def test_concurrent_clients_of_more_models_than_fit_all_get_answers(stack: Stack) -> None:
    """Three clients at once, each on its own model, room for two: models are unloaded only when idle, each
    waiting request is answered, and no request fails (the loading 503s are waited out, as clients do)."""
    audio = wav_bytes(make_waveform(1.0, seed=10))
    ids = ("org/w2v-a", "org/w2v-b", "org/w2v-c")
    exports = _loader_metric(stack, "exported")

    def client(model_id: str) -> list[int]:
        return [_post(stack, model_id, audio, WAIT).status_code for _ in range(4)]

    with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:
        statuses = list(pool.map(client, ids))
    assert statuses == [[200] * 4] * len(ids), statuses
    assert len(_on_demand_loaded(stack)) <= LIMIT
    assert _loader_metric(stack, "exported") == exports


@needs_chromium
def test_the_page_shows_a_cold_model_loading_then_its_scores(stack: Stack, tmp_path: Path) -> None:
    """The try-it page in Chromium, with a Hub id typed that is not loaded: the gateway's loading 503 is shown
    with its estimated_time while the page retries, then the scores replace it."""
    page_id = _not_loaded(stack)
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{stack.gateway}/ui")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model-ids option"))
        model = driver.find_element(By.ID, "model")
        model.clear()
        model.send_keys(page_id)
        driver.find_element(By.ID, "file").send_keys(str(ROOT / "samples" / "yes.wav"))
        loading = WebDriverWait(driver, 30).until(
            lambda d: (status := d.execute_script(RESULTS)[4]).startswith("Loading") and status
        )
        assert re.fullmatch(rf"Loading {page_id}: about \d+ s left \(waited \d+ s\) \.\.\.", loading), loading
        title, labels, _, error, status = WebDriverWait(driver, 300).until(
            lambda d: (shown := d.execute_script(RESULTS))[1] and shown
        )
    assert title == "yes.wav" and error == "" and status == ""
    assert len(labels) == min(10, len(tiny_checkpoints.LABELS)) and set(labels) <= set(tiny_checkpoints.LABELS)
