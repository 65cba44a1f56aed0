"""The one Triton client, against a real tritonserver serving the committed repository: readiness, the index,
configs, load / reload / unload, statistics, classify, and one error convention (``TritonError``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_until

from local_triton.tritonserver import LocalTriton, Ports, free_port
from stub_health import processes as stub_processes
from triton_control import AsyncTritonControl, TritonControl, TritonError
from triton_control.channel import grpc_target, lb_policy_for, port_of
from triton_steps import contract

ROOT = Path(__file__).resolve().parents[2]
MODEL = contract.StepNames("keyword-spotter")
CLIP = (ROOT / "samples" / "yes.wav").read_bytes()


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    """A server of its own: these tests unload and reload models."""
    ports = Ports(free_port(), free_port(), free_port())
    with LocalTriton(ROOT / "model_repository", tmp_path_factory.mktemp("control"), ports) as server:
        yield server


@pytest.fixture
def control(triton: LocalTriton) -> Iterator[TritonControl]:
    with TritonControl(triton.grpc_url) as client:
        yield client


def test_readiness_index_and_config(control: TritonControl) -> None:
    assert control.server_ready() and control.model_ready(MODEL.ensemble)
    states = {entry.name: entry for entry in control.index()}
    assert set(MODEL.all()) <= set(states) and all(states[name].ready for name in MODEL.all())
    config = control.config(MODEL.ensemble)
    assert config["platform"] == "ensemble" and contract.METADATA_PARAMETER in config["parameters"]


def test_classify_and_statistics(control: TritonControl) -> None:
    before = control.statistics(MODEL.ensemble)[MODEL.ensemble].inferences
    answer = control.classify(MODEL.ensemble, CLIP, top_k=2)
    assert len(answer) == 2 and answer[0][0] == "yes" and answer[0][1] >= answer[1][1]
    # Triton counts a request once its response is sent: a moment after the client has it, on a busy machine
    counted = wait_until(lambda: (s := control.statistics())[MODEL.ensemble].inferences > before and s)
    assert counted[MODEL.ensemble].inferences == before + 1 and counted[MODEL.network].executions >= 1


def test_reload_starts_fresh_stubs_and_unload_then_load_serves_again(triton: LocalTriton, control: TritonControl):
    def stub_pids() -> set[int]:
        found = stub_processes.find(triton.ports.grpc)
        assert found is not None  # the sync's healer finds this server by the port its client uses
        return {pid for pid, name in found.pids.items() if name.startswith(MODEL.postprocess)}

    old = stub_pids()
    control.reload(MODEL.postprocess)  # an unchanged config would be a no-op: the marker forces new instances
    assert stub_pids() - old and control.model_ready(MODEL.postprocess)

    control.unload_export(MODEL.ensemble)
    assert not any(control.model_ready(model) for model in MODEL.all())
    with pytest.raises(TritonError) as error:
        control.classify(MODEL.ensemble, CLIP)
    assert error.value.not_available and not error.value.invalid_input

    async def load_back() -> list[tuple[str, float]]:
        async with AsyncTritonControl(triton.grpc_url) as client:
            await client.load_export(MODEL.ensemble)
            return await client.classify(MODEL.ensemble, CLIP, timeout_s=60)

    assert asyncio.run(load_back())[0][0] == "yes"


def test_bad_input_is_invalid_argument_without_the_ensemble_prefix(control: TritonControl) -> None:
    with pytest.raises(TritonError) as error:
        control.classify(MODEL.ensemble, b"not audio at all" * 8)
    assert error.value.status == "INVALID_ARGUMENT" and error.value.invalid_input
    assert error.value.message.startswith("could not decode the audio")  # "in ensemble '...', " removed


def test_an_unreachable_server_is_one_error() -> None:
    url = f"127.0.0.1:{free_port()}"
    with TritonControl(url) as control:
        assert not control.server_ready() and not control.model_ready(MODEL.ensemble)
        with pytest.raises(TritonError) as error:
            control.index()
    assert error.value.status == "UNAVAILABLE" and error.value.replica_gone

    async def ask() -> None:
        async with AsyncTritonControl(url) as client:
            await client.server_ready()

    with pytest.raises(TritonError) as error:
        asyncio.run(ask())
    assert error.value.replica_gone


def test_targets_and_policies() -> None:
    assert grpc_target("grpc://triton:8001") == "triton:8001"
    assert grpc_target("127.0.0.1:1,localhost:2") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    with pytest.raises(ValueError, match="not host:port"):
        grpc_target("127.0.0.1:1,dns:///b:2")
    assert port_of("triton:8001") == 8001 and port_of("a:1,b:2") is None and port_of("dns:///triton") is None
    assert lb_policy_for("a:1,b:2", "auto") == "round_robin" and lb_policy_for("dns:///t:1", "auto") == "round_robin"
    assert lb_policy_for("t:1", "auto") == "pick_first" and lb_policy_for("t:1", "round_robin") == "round_robin"
