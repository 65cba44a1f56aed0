"""Following one request: X-Request-Id accepted or made, echoed on every answer and in error bodies, in the
gateway's JSON log (the access line), and never the token."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local_triton.services import GatewayProcess
from local_triton.tritonserver import LocalTriton, free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token-value"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def gateway(default_served: tuple[LocalTriton, str], tmp_path_factory) -> Iterator[GatewayProcess]:
    triton, _ = default_served
    log = tmp_path_factory.mktemp("request_ids") / "gateway.log"
    with GatewayProcess(triton.grpc_url, free_port(), log, log_format="json", api_token=TOKEN) as process:
        yield process


def _log_lines(gateway: GatewayProcess) -> list[dict]:
    return [json.loads(line) for line in gateway.log_path.read_text().splitlines() if line.strip()]


def _entries_with_id(gateway: GatewayProcess, request_id: str, timeout: float = 10) -> list[dict]:
    """The log lines carrying ``request_id``. The access line is written after the last body byte is sent, so a
    fast client can read the log before it lands: wait for it rather than race it."""
    deadline = time.monotonic() + timeout
    while not (found := [e for e in _log_lines(gateway) if e.get("request_id") == request_id]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return found


def test_a_client_id_is_echoed_and_logged_with_the_model_and_status(gateway: GatewayProcess) -> None:
    clip = (ROOT / "samples" / "yes.wav").read_bytes()
    answer = httpx.post(f"{gateway.url}/", content=clip, headers={**AUTH, "X-Request-Id": "client-42.a:b"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "client-42.a:b"
    (line,) = _entries_with_id(gateway, "client-42.a:b")
    assert line["logger"] == "gateway.access" and line["model"] == "keyword-spotter" and line["status"] == 200
    assert line["bytes"] == len(answer.content) and line["client"] == "127.0.0.1" and line["seconds"] > 0


@pytest.mark.parametrize("given", ["", "has spaces", "x" * 129, "semi;colon"])
def test_a_missing_or_odd_id_is_replaced_and_errors_carry_it(gateway: GatewayProcess, given: str) -> None:
    headers = {**AUTH, "X-Request-Id": given} if given else AUTH
    answer = httpx.post(f"{gateway.url}/", content=b"not audio", headers=headers)
    request_id = answer.headers["x-request-id"]
    assert answer.status_code == 400 and request_id != given and len(request_id) == 32
    assert answer.json()["request_id"] == request_id and "error" in answer.json()
    assert answer.headers.get_list("x-request-id") == [request_id]  # once, not twice


def test_every_answer_has_an_id_even_a_401_and_a_404(gateway: GatewayProcess) -> None:
    for answer in (httpx.post(f"{gateway.url}/", content=b""), httpx.get(f"{gateway.url}/nowhere", headers=AUTH)):
        assert answer.status_code in (401, 404) and answer.json()["request_id"] == answer.headers["x-request-id"]


def test_json_logs_parse_and_never_hold_the_token(gateway: GatewayProcess) -> None:
    httpx.post(f"{gateway.url}/", content=b"x", headers=AUTH)
    lines = _log_lines(gateway)  # json.loads of every line: each is one JSON object
    assert {"gateway.access", "uvicorn.error"} <= {line["logger"] for line in lines}
    assert TOKEN not in gateway.log_path.read_text()
