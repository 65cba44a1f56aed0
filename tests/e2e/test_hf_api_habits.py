"""What HF Inference API clients do beyond the spec, through a real gateway and tritonserver: the older
``options``, parameters in the query string, a trailing slash; and the docs and OpenAPI document as served."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from helpers import free_port, make_waveform, running_gateway, wav_bytes

from export.exporter import ExportOptions, export_model
from local_triton.tritonserver import LocalTriton, Ports


def _json_body(audio: bytes, **extra: object) -> dict:
    return {"inputs": base64.b64encode(audio).decode(), **extra}


def test_query_string_parameters_equal_json_parameters(gateway: str) -> None:
    audio = wav_bytes(make_waveform(1.0, seed=11))
    from_query = httpx.post(f"{gateway}/models/ast?top_k=2&function_to_apply=sigmoid", content=audio)
    from_json = httpx.post(
        f"{gateway}/models/ast", json=_json_body(audio, parameters={"top_k": 2, "function_to_apply": "sigmoid"})
    )
    assert from_query.status_code == from_json.status_code == 200
    assert from_query.json() == from_json.json() and len(from_query.json()) == 2
    refused = httpx.post(f"{gateway}/models/ast?temperature=2", content=audio)
    assert refused.status_code == 400 and "unknown parameter 'temperature'" in refused.json()["error"]


def test_a_trailing_slash_names_the_same_model(gateway: str) -> None:
    audio = wav_bytes(make_waveform(1.0, seed=12))
    plain = httpx.post(f"{gateway}/models/org/hubert-ks", content=audio)
    slashed = httpx.post(f"{gateway}/models/org/hubert-ks/", content=audio)
    assert plain.status_code == slashed.status_code == 200 and plain.json() == slashed.json()


def test_answers_say_how_long_triton_took_and_where(gateway: str) -> None:
    """HF's x-compute-time (seconds) and x-compute-type; local mode runs every network on the CPU."""
    answer = httpx.post(f"{gateway}/models/ast", content=wav_bytes(make_waveform(1.0, seed=15)))
    assert answer.status_code == 200 and answer.headers["x-compute-type"] == "cpu"
    assert 0 < float(answer.headers["x-compute-time"]) < 60


def test_options_are_accepted(gateway: str) -> None:
    audio = wav_bytes(make_waveform(1.0, seed=13))
    body = _json_body(audio, options={"wait_for_model": True, "use_cache": False})
    answer = httpx.post(f"{gateway}/models/ast", json=body)
    assert answer.status_code == 200
    assert answer.json() == httpx.post(f"{gateway}/models/ast", content=audio).json()


def test_wait_for_model_rides_out_a_cold_start(checkpoints, tmp_path: Path) -> None:
    """Triton starts 2 s after the request: with wait_for_model it is answered, without it 503 at once."""
    repository = tmp_path / "repo"
    export_model(str(checkpoints["ast"]), repository, ExportOptions(name="ast"))
    ports = Ports(free_port(), free_port(), free_port())
    triton = LocalTriton(repository, tmp_path / "run", ports)
    audio = wav_bytes(make_waveform(1.0, seed=14))
    with running_gateway(triton.grpc_url, timeout_s="120") as gateway:
        cold = httpx.post(f"{gateway}/models/ast", content=audio, timeout=30)
        assert cold.status_code == 503 and cold.headers["Retry-After"]
        answers: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    f"{gateway}/models/ast", json=_json_body(audio, options={"wait_for_model": True}), timeout=150
                )
            )
        )
        waiting.start()
        time.sleep(2)
        try:
            triton.start()
            waiting.join(150)
        finally:
            triton.stop()
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert len(answers[0].json()) > 1


def test_docs_are_served_from_local_assets(gateway: str) -> None:
    page = httpx.get(f"{gateway}/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "unpkg" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/assets/{asset}" in page.text
        served = httpx.get(f"{gateway}/docs/assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 10_000


def test_openapi_says_what_the_code_sends(gateway: str) -> None:
    schema = httpx.get(f"{gateway}/openapi.json").json()
    assert '"422"' not in str(schema).replace("'", '"')
    for path in ("/models/{model_id}", "/"):
        operation = schema["paths"][path]["post"]
        assert {"400", "401", "404", "413", "502", "503", "504"} <= set(operation["responses"])
        assert "Retry-After" in operation["responses"]["503"]["headers"]
        assert "X-Error-Message" in operation["responses"]["400"]["headers"]
        body = operation["requestBody"]["content"]
        assert "options" in body["application/json"]["schema"]["properties"]
        assert body["application/json"]["examples"]
    # errors really carry the documented header
    answer = httpx.post(f"{gateway}/models/ast", content=wav_bytes(np.zeros(10, np.float32)))
    assert answer.status_code == 400 and answer.headers["X-Error-Message"]
