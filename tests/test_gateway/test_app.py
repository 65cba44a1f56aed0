"""The gateway app in process, in front of a stand-in Triton: the HF API's answers, errors as kinds, the
request id, readiness, the model list, metrics, admission and wait-for-model (no tritonserver)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import pytest
from fake_triton import FakeTriton, gateway_app, metadata, scores_for
from helpers import wait_until

from triton_control import TritonError

KWS = metadata("kws", "org/kws")
AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt "


def _predictions(answer: list[tuple[str, float]]) -> list[dict[str, object]]:
    return [{"label": label, "score": score} for label, score in answer]


@pytest.fixture
def triton() -> FakeTriton:
    return FakeTriton.serving(KWS)


def test_raw_bytes_are_classified_by_the_only_model(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        answer = client.post("/", content=AUDIO)
    assert answer.status_code == 200
    assert answer.json() == _predictions(scores_for(KWS.labels, None))
    assert triton.calls[0].audio == AUDIO and triton.calls[0].model == "kws"


@pytest.mark.parametrize("path", ["/models/org/kws", "/models/kws", "/models/org/kws/"])
def test_a_model_is_named_by_its_id_or_triton_name(triton: FakeTriton, path: str) -> None:
    with gateway_app(triton) as client:
        assert client.post(path, content=AUDIO).status_code == 200


def test_json_parameters_reach_triton(triton: FakeTriton) -> None:
    body = {"inputs": base64.b64encode(AUDIO).decode(), "parameters": {"top_k": 2, "function_to_apply": "none"}}
    with gateway_app(triton) as client:
        answer = client.post("/", json=body)
    assert answer.json() == _predictions(scores_for(KWS.labels, 2))
    assert (triton.calls[0].top_k, triton.calls[0].function, triton.calls[0].audio) == (2, "none", AUDIO)


def test_a_multipart_form_upload_is_told_what_to_send(triton: FakeTriton) -> None:
    """``curl -F file=@clip.wav``, what many type first: a 415 saying how to send the file, not a decoding error."""
    with gateway_app(triton) as client:
        answer = client.post("/", files={"file": ("clip.wav", AUDIO, "audio/wav")})
    assert answer.status_code == 415 and "curl --data-binary @clip.wav" in _error(answer)
    assert not triton.calls


def test_query_parameters_count_as_parameters(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        assert len(client.post("/?top_k=1", content=AUDIO).json()) == 1
    assert triton.calls[0].top_k == 1


def test_answers_carry_hf_compute_headers(triton: FakeTriton) -> None:
    """x-compute-time: Triton's seconds for the request; x-compute-type: where the network ran."""
    triton.delay_s = 0.05
    with gateway_app(triton) as client:
        answer = client.post("/", content=AUDIO)
    assert 0.05 <= float(answer.headers["x-compute-time"]) < 5
    assert answer.headers["x-compute-type"] == "cpu"
    triton.on_gpu.add("kws")
    with gateway_app(triton) as client:
        assert client.post("/models/org/kws", content=AUDIO).headers["x-compute-type"] == "gpu"


def test_the_request_id_is_echoed_and_becomes_tritons(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        answer = client.post("/", content=AUDIO, headers={"X-Request-Id": "abc-123"})
    assert answer.headers["x-request-id"] == "abc-123" and triton.calls[0].request_id == "abc-123"


def test_an_odd_request_id_is_replaced(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        answer = client.post("/", content=AUDIO, headers={"X-Request-Id": "a b"})
    assert answer.headers["x-request-id"] != "a b" and len(answer.headers["x-request-id"]) == 32


def _error(answer: object) -> str:
    body = answer.json()  # type: ignore[attr-defined]
    assert set(body) >= {"error", "request_id"}
    assert answer.headers["x-error-message"]  # type: ignore[attr-defined]
    return body["error"]


def test_an_unknown_model_is_a_404_naming_the_served_ones(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        answer = client.post("/models/nope", content=AUDIO)
    assert answer.status_code == 404 and "org/kws" in _error(answer)


def test_no_default_among_several_models_is_a_404() -> None:
    with gateway_app(FakeTriton.serving(KWS, metadata("other"))) as client:
        answer = client.post("/", content=AUDIO)
    assert answer.status_code == 404 and "GATEWAY_DEFAULT_MODEL" in _error(answer)


def test_the_default_model_setting_picks_one_of_several() -> None:
    triton = FakeTriton.serving(KWS, metadata("other"))
    with gateway_app(triton, default_model="other") as client:
        assert client.post("/", content=AUDIO).status_code == 200
        listed = {m["id"]: m["default"] for m in client.get("/models").json()}
    assert triton.calls[0].model == "other"
    assert listed == {"org/kws": False, "other": True}  # what /ui preselects


def test_the_only_model_is_marked_the_default_and_none_of_several_without_the_setting(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        assert [m["default"] for m in client.get("/models").json()] == [True]
    with gateway_app(FakeTriton.serving(KWS, metadata("other"))) as client:
        assert [m["default"] for m in client.get("/models").json()] == [False, False]


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b'{"inputs": "***"}', "application/json", "base64"),
        (b"{not json", "application/json", "not valid JSON"),
        (b'{"inputs": "AAAA", "parameters": {"top_k": 0}}', "application/json", "top_k"),
        (b'{"inputs": "AAAA", "parameters": {"temperature": 1}}', "application/json", "unknown parameter"),
        (b"[1, 2]", "application/json", "must be an object"),
    ],
)
def test_bad_bodies_are_400_saying_what_is_wrong(triton: FakeTriton, body: bytes, content_type: str, says: str) -> None:
    with gateway_app(triton) as client:
        answer = client.post("/", content=body, headers={"content-type": content_type})
    assert answer.status_code == 400 and says in _error(answer)
    assert not triton.calls


def test_a_body_over_the_limit_is_413(triton: FakeTriton) -> None:
    with gateway_app(triton, max_body_bytes=10) as client:
        answer = client.post("/", content=b"x" * 11)
    assert answer.status_code == 413 and "limit" in _error(answer)


@pytest.mark.parametrize(
    ("error", "status", "says"),
    [
        (TritonError("INVALID_ARGUMENT", "could not decode the audio"), 400, "could not decode"),
        (TritonError("DEADLINE_EXCEEDED", "Deadline Exceeded"), 504, "timed out"),
        (TritonError("NOT_FOUND", "unknown model"), 503, "not available"),
        (TritonError("INTERNAL", "onnxruntime failed\nbadly"), 502, "Triton failed"),
    ],
)
def test_tritons_errors_become_the_clients(triton: FakeTriton, error: TritonError, status: int, says: str) -> None:
    triton.errors.append(error)
    with gateway_app(triton) as client:
        answer = client.post("/", content=AUDIO)
    assert answer.status_code == status and says in _error(answer)
    assert "\n" not in answer.headers["x-error-message"]
    assert ("retry-after" in answer.headers) == (status == 503)


def test_a_dead_stub_is_a_503_and_its_step_is_reloaded(triton: FakeTriton) -> None:
    triton.errors.append(TritonError("INTERNAL", "Stub process 'kws_preprocess_0_0' is not healthy."))
    with gateway_app(triton) as client:
        answer = client.post("/", content=AUDIO)
        for _ in range(100):
            if triton.reloads:
                break
            time.sleep(0.01)
        metrics = client.get("/metrics").text
    assert answer.status_code == 503 and "kws_preprocess" in _error(answer)
    assert triton.reloads == ["kws_preprocess"]
    assert "gateway_stub_reloads_total 1.0" in metrics


def test_a_dead_stub_met_while_triton_fails_to_list_its_models_is_still_a_503(
    triton: FakeTriton, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery lists Triton's models to find the dead step's; Triton failing that too was once a 500."""

    listing = triton.index

    async def failing_index() -> list:  # once the request reached Triton
        if triton.calls:
            raise TritonError("INTERNAL", "failed to list the repository")
        return await listing()

    triton.errors.append(TritonError("INTERNAL", "Stub process 'kws_preprocess_0_0' is not healthy."))
    with gateway_app(triton) as client:
        monkeypatch.setattr(triton, "index", failing_index)
        answer = client.post("/", content=AUDIO)
    assert answer.status_code == 503 and "kws_preprocess_0_0" in _error(answer)
    assert "retry-after" in answer.headers


def test_a_gone_replica_is_retried(triton: FakeTriton) -> None:
    triton.errors.append(TritonError("UNAVAILABLE", "Socket closed"))
    with gateway_app(triton) as client:
        assert client.post("/", content=AUDIO).status_code == 200
    assert len(triton.calls) == 2


def test_triton_unreachable_is_a_503_with_retry_after(triton: FakeTriton) -> None:
    with gateway_app(triton, retry_after_s=7) as client:
        triton.unreachable = True
        answer = client.post("/models/org/kws", content=AUDIO)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "7"


def test_a_token_is_required_once_set(triton: FakeTriton) -> None:
    from pydantic import SecretStr

    with gateway_app(triton, api_token=SecretStr("s3cret")) as client:
        assert client.post("/", content=AUDIO).status_code == 401
        assert client.post("/", content=AUDIO, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.post("/", content=AUDIO, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.post("/", content=AUDIO, headers={"Authorization": "Bearer: s3cret"}).status_code == 200
        assert client.get("/models").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/ready").json() == {"status": "ready"}  # which models exist: for authenticated clients


def test_an_empty_token_is_no_token(triton: FakeTriton) -> None:
    from pydantic import SecretStr

    with gateway_app(triton, api_token=SecretStr("")) as client:
        assert client.post("/", content=AUDIO).status_code == 200


def test_health_is_always_ok(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        triton.unreachable = True
        assert client.get("/health").json() == {"status": "ok"}


def test_ready_lists_the_models_and_those_that_failed() -> None:
    triton = FakeTriton.serving(KWS)
    triton.failed["broken"] = "load failed: no model.onnx"
    with gateway_app(triton) as client:
        answer = client.get("/ready")
    assert answer.json() == {
        "status": "ready",
        "models": ["org/kws"],
        "failed": {"broken": "load failed: no model.onnx"},
    }


@pytest.mark.parametrize("trouble", ["unreachable", "no models", "not ready"])
def test_ready_is_503_saying_why(trouble: str) -> None:
    triton = FakeTriton.serving() if trouble == "no models" else FakeTriton.serving(KWS)
    with gateway_app(triton) as client:
        triton.unreachable = trouble == "unreachable"
        if trouble == "not ready":
            triton.not_ready.add("kws")
        answer = client.get("/ready")
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert {"unreachable": "unreachable", "no models": "no audio", "not ready": "not ready"}[trouble] in _error(answer)


def test_models_lists_what_the_metadata_says(triton: FakeTriton) -> None:
    triton.failed["broken"] = "no model.onnx"
    with gateway_app(triton) as client:
        served, failed = client.get("/models").json()
    assert served["id"] == "org/kws" and served["name"] == "kws" and served["ready"] is True
    assert served["labels"] == KWS.labels and served["window_seconds"] == 1.0 and served["precision"] == "fp32"
    assert served["decoder"] == "FFmpeg 7.0.2 (PyAV 13.1.0), as `ffmpeg -i - -ac 1 -ar 16000 -f f32le -`"
    assert failed == {**failed, "id": "broken", "ready": False, "state": "failed", "error": "no model.onnx"}


def test_metrics_count_requests_by_model_and_status(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        client.post("/", content=AUDIO)
        client.post("/models/nope", content=AUDIO)
        text = client.get("/metrics").text
    assert 'gateway_requests_total{model="org/kws",status="200"} 1.0' in text
    assert 'gateway_requests_total{model="unknown",status="404"} 1.0' in text
    assert 'gateway_triton_seconds_count{model="org/kws"} 1.0' in text
    assert "gateway_in_flight 0.0" in text


def test_unknown_routes_and_methods_answer_json(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        missing, wrong = client.get("/nowhere"), client.put("/")
    assert missing.status_code == 404 and _error(missing)
    assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]


def test_the_openapi_document_has_no_422(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        document = client.get("/openapi.json").json()
    responses = [op["responses"] for path in document["paths"].values() for op in path.values()]
    assert responses and not any("422" in r for r in responses)
    assert "/models/{model_id}" in document["paths"]


def test_requests_beyond_the_cap_are_refused_at_once(triton: FakeTriton) -> None:
    with gateway_app(triton, max_concurrent_requests=1) as client:
        triton.gate = client.portal.call(asyncio.Event)
        first = threading.Thread(target=client.post, args=("/",), kwargs={"content": AUDIO})
        first.start()
        wait_until(lambda: len(triton.calls) == 1)
        refused = client.post("/", content=AUDIO)
        in_flight = client.get("/metrics").text
        client.portal.call(triton.gate.set)
        first.join()
    assert refused.status_code == 503 and "limit of 1 requests" in _error(refused)
    assert "gateway_in_flight 1.0" in in_flight


def test_an_overloaded_gateway_is_not_waited_out_by_wait_for_model(triton: FakeTriton) -> None:
    """X-Wait-For-Model waits for a loading model, not for the gateway's own cap: at the cap the request is
    refused at once, as any other (it once polled for GATEWAY_WAIT_FOR_MODEL_S, holding its body)."""
    with gateway_app(triton, max_concurrent_requests=1, wait_for_model_s=60) as client:
        triton.gate = client.portal.call(asyncio.Event)
        first = threading.Thread(target=client.post, args=("/",), kwargs={"content": AUDIO})
        first.start()
        wait_until(lambda: len(triton.calls) == 1)
        answers: list = []
        waiting = threading.Thread(
            target=lambda: answers.append(client.post("/", content=AUDIO, headers={"X-Wait-For-Model": "true"}))
        )
        waiting.start()
        waiting.join(timeout=20)  # the gate is still closed: only a refusal can come back
        client.portal.call(triton.gate.set)
        first.join()
        waiting.join()
    assert answers and answers[0].status_code == 503 and "limit of 1 requests" in _error(answers[0])
    assert len(triton.calls) == 1


def test_wait_for_model_waits_out_a_loading_model(triton: FakeTriton) -> None:
    triton.not_ready.add("kws")
    triton.errors.append(TritonError("NOT_FOUND", "Request for unknown model: 'kws' is not ready"))
    triton.errors.append(TritonError("NOT_FOUND", "Request for unknown model: 'kws' is not ready"))
    with gateway_app(triton) as client:
        not_waiting = client.post("/", content=AUDIO)
        waiting = _timed(lambda: client.post("/", content=AUDIO, headers={"X-Wait-For-Model": "true"}))
    assert not_waiting.status_code == 503
    assert waiting[0].status_code == 200 and waiting[1] >= 0.9  # one poll of a second


def test_options_wait_for_model_in_the_body_waits_too(triton: FakeTriton) -> None:
    triton.errors.append(TritonError("NOT_FOUND", "Request for unknown model: 'kws' is not ready"))
    body = {"inputs": base64.b64encode(AUDIO).decode(), "options": {"wait_for_model": True}}
    with gateway_app(triton) as client:
        assert client.post("/", json=body).status_code == 200


def test_wait_for_model_gives_up_after_its_limit(triton: FakeTriton) -> None:
    triton.errors.extend(TritonError("NOT_FOUND", "not ready") for _ in range(10))
    with gateway_app(triton, wait_for_model_s=0.5) as client:
        answer = client.post("/", content=AUDIO, headers={"X-Wait-For-Model": "1"})
    assert answer.status_code == 503


def test_a_draining_gateway_refuses_new_requests_but_answers_health(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        drain = _drain_of(client.app)
        drain.draining = True
        refused, health = client.post("/", content=AUDIO), client.get("/health")
    assert refused.status_code == 503 and refused.headers["connection"] == "close"
    assert "shutting down" in refused.json()["error"] and refused.headers["x-request-id"]
    assert health.status_code == 200


def test_the_lifespan_closes_the_triton_client(triton: FakeTriton) -> None:
    with gateway_app(triton):
        assert not triton.closed
    assert triton.closed


def test_an_unexpected_failure_is_a_json_500(triton: FakeTriton) -> None:
    triton.errors.append(RuntimeError("a bug"))  # type: ignore[arg-type]
    with gateway_app(triton) as client:
        answer = client.post("/", content=AUDIO)
    assert answer.status_code == 500 and "request id" in _error(answer)


def _timed(call: object) -> tuple[object, float]:
    started = time.monotonic()
    result = call()  # type: ignore[operator]
    return result, time.monotonic() - started


def _drain_of(app: object) -> object:
    layer = app.middleware_stack  # type: ignore[attr-defined]
    while not hasattr(layer, "drain"):
        layer = layer.app
    return layer.drain


def test_json_body_and_metrics_agree_on_the_error_format(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        answer = client.post("/", content=b'{"inputs": 1}', headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert json.loads(answer.content)["request_id"] == answer.headers["x-request-id"]


def test_get_root_answers_as_hfs_inference_containers_do(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        answer, head = client.get("/"), client.head("/")
    assert answer.json() == {"ok": "ok"} and head.status_code == 200 and head.content == b""


def test_the_page_has_an_icon(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        answer = client.get("/favicon.ico")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/svg+xml"
    assert answer.content.startswith(b"<svg")


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_json_sent_as_curl_d_labels_it_is_read_as_json(triton: FakeTriton, content_type: str) -> None:
    body = json.dumps({"inputs": base64.b64encode(AUDIO).decode(), "parameters": {"top_k": 1}})
    with gateway_app(triton) as client:
        answer = client.post("/", content=body, headers={"content-type": content_type})
    assert answer.status_code == 200 and len(answer.json()) == 1 and triton.calls[0].audio == AUDIO


def test_cors_is_off_unless_origins_are_set(triton: FakeTriton) -> None:
    with gateway_app(triton) as client:
        answer = client.post("/", content=AUDIO, headers={"Origin": "https://app.example.com"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def test_pages_on_allowed_origins_may_call_the_api(triton: FakeTriton) -> None:
    origin = "https://app.example.com"
    with gateway_app(triton, cors_origins=f"{origin}, https://other.example.com") as client:
        preflight = client.options(
            "/models/org/kws",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"},
        )  # fmt: skip
        answer = client.post("/models/org/kws", content=AUDIO, headers={"Origin": origin})
        stranger = client.post("/models/org/kws", content=AUDIO, headers={"Origin": "https://evil.example.com"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert answer.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in stranger.headers
