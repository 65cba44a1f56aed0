"""The gateway's retry of a classification whose replica went away (``gateway.triton.Triton.classify``).

The client is a stand-in that fails as tritonclient does when a replica dies; that serving survives a real dead
replica is proven by ``tests/e2e/test_triton_replicas.py``."""

from __future__ import annotations

import asyncio

import pytest

from gateway import triton as triton_module
from gateway.errors import GatewayError
from gateway.triton import REPLICA_RETRIES, Triton
from triton_control import TritonError

ANSWER = [("yes", 0.75), ("no", 0.25)]


class _Client:
    """Fails the first ``failures`` classifications with ``error``, then answers."""

    def __init__(self, failures: int, error: TritonError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def classify(self, *_args: object) -> list[tuple[str, float]]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return ANSWER

    async def close(self) -> None:
        pass


def _classify(client: _Client, timeout_s: float = 30.0) -> list[tuple[str, float]]:
    async def run() -> list[tuple[str, float]]:
        triton = Triton(client, refresh_s=5.0)  # type: ignore[arg-type]
        return [(p.label, p.score) for p in await triton.classify("m", b"", None, None, timeout_s)]

    return asyncio.run(run())


@pytest.fixture(autouse=True)
def _short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triton_module, "REPLICA_RETRY_PAUSE_S", 0.001)


GONE = TritonError("UNAVAILABLE", "Stream removed (sendmsg: Broken pipe (32))")


@pytest.mark.parametrize("failures", range(REPLICA_RETRIES + 1))
def test_a_gone_replica_is_retried_until_one_answers(failures: int) -> None:
    client = _Client(failures, GONE)
    assert _classify(client) == ANSWER
    assert client.calls == failures + 1


def test_retries_are_bounded_and_then_the_client_gets_503() -> None:
    client = _Client(REPLICA_RETRIES + 1, GONE)
    with pytest.raises(GatewayError) as raised:
        _classify(client)
    assert raised.value.status == 503 and "Broken pipe" in raised.value.message
    assert client.calls == REPLICA_RETRIES + 1


def test_other_errors_are_never_retried() -> None:
    client = _Client(1, TritonError("INVALID_ARGUMENT", "not audio"))
    with pytest.raises(GatewayError) as raised:
        _classify(client)
    assert raised.value.status == 400 and client.calls == 1


def test_no_retry_past_the_deadline() -> None:
    client = _Client(1, GONE)
    with pytest.raises(GatewayError):
        _classify(client, timeout_s=0.0)
    assert client.calls == 1
