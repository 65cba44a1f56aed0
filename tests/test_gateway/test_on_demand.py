"""Hub ids loaded on demand, in process: the loading answer, the loader's refusals, loading into Triton,
eviction of the least recently used idle model, pinning, and wait-for-model (stand-in Triton and loader)."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest
from fake_triton import FakeLoader, FakeTriton, gateway_app, metadata
from fastapi.testclient import TestClient
from helpers import wait_until

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt "
DEFAULT = metadata("kws", "kws")
A, B = metadata("org--a", "org/a", on_demand=True), metadata("org--b", "org/b", on_demand=True)


@pytest.fixture
def triton() -> FakeTriton:
    return FakeTriton.serving(DEFAULT)


@pytest.fixture
def loader(triton: FakeTriton) -> FakeLoader:
    return FakeLoader(triton, exports={"org/a": A, "org/b": B})


def _served(client: TestClient, model_id: str, timeout_s: float = 5.0) -> None:
    """Ask for ``model_id`` until it answers 200 (its load runs in the app's event loop meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while (answer := client.post(f"/models/{model_id}", content=AUDIO)).status_code != 200:
        assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.01)


def test_an_allowed_id_gets_the_loading_answer_while_it_is_exported(triton: FakeTriton, loader: FakeLoader) -> None:
    loader.rounds = 2
    with gateway_app(triton, loader, autoload="org/*") as client:
        answer = client.post("/models/org/a", content=AUDIO)
        states = {m["id"]: m["state"] for m in client.get("/models").json()}
    assert answer.status_code == 503 and answer.json()["error"] == "Model org/a is currently loading"
    estimate = answer.json()["estimated_time"]
    assert estimate >= 12.0 and answer.headers["retry-after"] == str(math.ceil(estimate))
    assert loader.asked == ["org/a"] and states["org/a"] == "loading"


def test_an_exported_id_is_loaded_and_served(triton: FakeTriton, loader: FakeLoader) -> None:
    with gateway_app(triton, loader, autoload="org/*") as client:
        _served(client, "org/a")
        models = {m["id"]: m for m in client.get("/models").json()}
        metrics = client.get("/metrics").text
    assert "org--a" in triton.loaded and models["org/a"]["ready"] is True
    assert "gateway_on_demand_loads_total 1.0" in metrics


def test_an_id_the_patterns_do_not_allow_is_a_404_and_the_loader_is_not_asked(
    triton: FakeTriton, loader: FakeLoader
) -> None:
    with gateway_app(triton, loader, autoload="superb/*") as client:
        assert client.post("/models/org/a", content=AUDIO).status_code == 404
    assert not loader.asked


def test_without_autoload_every_unknown_id_is_a_404(triton: FakeTriton, loader: FakeLoader) -> None:
    with gateway_app(triton, loader) as client:
        assert client.post("/models/org/a", content=AUDIO).status_code == 404
    assert not loader.asked


@pytest.mark.parametrize("status", [400, 403, 404, 413, 422])
def test_the_loaders_refusal_reaches_the_client_with_its_status(
    triton: FakeTriton, loader: FakeLoader, status: int
) -> None:
    loader.refusals["org/c"] = (status, "org/c is not an audio-classification model")
    with gateway_app(triton, loader, autoload="org/*") as client:
        answer = client.post("/models/org/c", content=AUDIO)
        states = {m["id"]: (m["state"], m["error"]) for m in client.get("/models").json()}
    assert answer.status_code == status and "not an audio-classification" in answer.json()["error"]
    assert states["org/c"] == ("failed", "org/c is not an audio-classification model")


def test_a_loader_away_is_a_503_and_nothing_is_remembered(triton: FakeTriton, loader: FakeLoader) -> None:
    loader.away = True
    with gateway_app(triton, loader, autoload="org/*") as client:
        answer = client.post("/models/org/a", content=AUDIO)
        ids = {m["id"] for m in client.get("/models").json()}
    assert answer.status_code == 503 and "unreachable" in answer.json()["error"]
    assert "org/a" not in ids


def test_the_least_recently_used_idle_model_makes_room(triton: FakeTriton, loader: FakeLoader) -> None:
    with gateway_app(triton, loader, autoload="org/*", max_loaded_models=1) as client:
        _served(client, "org/a")
        _served(client, "org/b")
        states = {m["id"]: m["state"] for m in client.get("/models").json()}
        metrics = client.get("/metrics").text
    assert triton.unloads == ["org--a"] and set(triton.loaded) == {"kws", "org--b"}
    assert states["org/a"] == "unloaded" and states["org/b"] == "loaded"
    assert "gateway_on_demand_evictions_total 1.0" in metrics


def test_an_unloaded_model_comes_back_on_request(triton: FakeTriton, loader: FakeLoader) -> None:
    with gateway_app(triton, loader, autoload="org/*", max_loaded_models=1) as client:
        _served(client, "org/a")
        _served(client, "org/b")
        _served(client, "org/a")
    assert triton.unloads == ["org--a", "org--b"] and "org--a" in triton.loaded


def test_a_model_with_a_request_in_flight_is_never_unloaded(triton: FakeTriton, loader: FakeLoader) -> None:
    with gateway_app(triton, loader, autoload="org/*", max_loaded_models=1) as client:
        _served(client, "org/a")
        triton.gate = client.portal.call(asyncio.Event)
        busy = threading.Thread(target=client.post, args=("/models/org/a",), kwargs={"content": AUDIO})
        busy.start()
        wait_until(lambda: len(triton.calls) == 2)
        answer = client.post("/models/org/b", content=AUDIO)
        time.sleep(0.05)  # the load's turn in the event loop
        states = {m["id"]: m["state"] for m in client.get("/models").json()}
        client.portal.call(triton.gate.set)
        busy.join()
    assert answer.status_code == 503 and "org--a" in triton.loaded and not triton.unloads
    assert states["org/b"] == "unloaded"  # tried, no room: the next request tries again


def test_a_pinned_model_is_never_unloaded(triton: FakeTriton, loader: FakeLoader) -> None:
    with gateway_app(triton, loader, autoload="org/*", max_loaded_models=1, pinned_models="org/a") as client:
        _served(client, "org/a")
        _served(client, "org/b")
    assert not triton.unloads and {"org--a", "org--b"} <= set(triton.loaded)


def test_the_default_model_is_never_counted_or_unloaded(triton: FakeTriton, loader: FakeLoader) -> None:
    with gateway_app(triton, loader, autoload="*", max_loaded_models=1, default_model="kws") as client:
        _served(client, "org/a")
        assert client.post("/", content=AUDIO).status_code == 200
    assert "kws" in triton.loaded and not triton.unloads


def test_wait_for_model_waits_for_an_on_demand_export(triton: FakeTriton, loader: FakeLoader) -> None:
    loader.rounds = 2
    with gateway_app(triton, loader, autoload="org/*") as client:
        answer = client.post("/models/org/a", content=AUDIO, headers={"X-Wait-For-Model": "true"})
    assert answer.status_code == 200 and loader.asked == ["org/a", "org/a"]


def test_a_stream_on_a_loading_model_closes_with_try_again(triton: FakeTriton, loader: FakeLoader) -> None:
    import json

    with (
        gateway_app(triton, loader, autoload="org/*") as client,
        client.websocket_connect("/models/org/a/stream") as ws,
    ):
        ws.send_text(json.dumps({"sampling_rate": 16000}))
        error = ws.receive_json()
        close = ws.receive()
    assert "currently loading" in error["error"] and close["code"] == 1013
