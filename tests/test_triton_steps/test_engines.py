"""triton_steps.engines: onnxruntime and OpenVINO run the same model.onnx to the same outputs, OpenVINO with
f32 forced (its CPU default is bf16 where the CPU has it); bf16 only when asked, and only on a CPU that has it;
OpenVINO runs every architecture's attention fused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino
import pytest
import tiny_checkpoints
from helpers import CPU_HAS_BF16, NO_BF16_CPU, model_name
from openvino import properties

from triton_steps import contract, engines

ROOT = Path(__file__).resolve().parents[2]
NETWORK = ROOT / "model_repository" / "keyword-spotter_onnx" / "1" / "model.onnx"  # input_features (b, 64, 100)


def _features(batch: int) -> dict[str, np.ndarray]:
    return {"input_features": np.random.default_rng(batch).standard_normal((batch, 64, 100)).astype(np.float32)}


@pytest.mark.parametrize("batch", [1, 3])
def test_both_engines_give_the_same_logits(batch: int) -> None:
    feed = _features(batch)
    ours, theirs = (engines.load(name, NETWORK, threads=1).run(feed)[0] for name in engines.ENGINES)
    assert ours.shape == theirs.shape == (batch, 12)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_openvino_computes_in_f32_and_its_outputs_are_its_own() -> None:
    engine = engines.load(engines.OPENVINO, NETWORK)
    assert isinstance(engine, engines.OpenVino)
    assert engine.compiled.get_property(properties.hint.inference_precision) == openvino.Type.f32
    first = engine.run(_features(1))[0]
    kept = first.copy()
    engine.run(_features(2))
    np.testing.assert_array_equal(first, kept)  # not overwritten by the next request's results


def test_openvino_leaves_its_threads_to_the_scheduler() -> None:
    """Pinned by default, two one-thread instances of a step pinned their threads to the same core."""
    engine = engines.load(engines.OPENVINO, NETWORK, threads=1)
    assert isinstance(engine, engines.OpenVino)
    assert engine.compiled.get_property(properties.hint.enable_cpu_pinning) is False


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown engine 'tensorflow'"):
        engines.load("tensorflow", NETWORK)


def test_only_openvino_computes_in_bf16() -> None:
    with pytest.raises(ValueError, match="onnxruntime computes in fp32 only"):
        engines.load(engines.ONNXRUNTIME, NETWORK, precision=engines.BF16)
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        engines.load(engines.OPENVINO, NETWORK, precision="fp16")


@pytest.mark.skipif(not CPU_HAS_BF16, reason="this CPU has no bf16 instructions (the refusal is tested below)")
def test_bf16_computes_in_bf16_close_to_f32() -> None:
    engine = engines.load(engines.OPENVINO, NETWORK, precision=engines.BF16)
    assert isinstance(engine, engines.OpenVino)
    assert engine.compiled.get_property(properties.hint.inference_precision) == openvino.Type.bf16
    feed = _features(2)
    reduced, exact = engine.run(feed)[0], engines.load(engines.OPENVINO, NETWORK).run(feed)[0]
    assert not np.array_equal(reduced, exact)  # bf16 really ran: it rounds
    np.testing.assert_allclose(reduced, exact, atol=0.05 * np.abs(exact).max())


def test_bf16_on_a_cpu_without_it_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenVINO itself would compute in f32 there, in silence; the engine refuses instead."""
    monkeypatch.setattr(engines, "cpu_capabilities", lambda: NO_BF16_CPU)
    with pytest.raises(engines.UnsupportedPrecision, match="bf16 needs a CPU with bf16 instructions .* FP32, INT8"):
        engines.load(engines.OPENVINO, NETWORK, precision=engines.BF16)
    assert isinstance(engines.load(engines.OPENVINO, NETWORK), engines.OpenVino)  # f32 is unaffected


# SEW-D's disentangled attention adds position terms between the two MatMuls: OpenVINO leaves its softmax apart
UNFUSED_SOFTMAX = {"sew_d": 2}


@pytest.mark.parametrize("name", [model_name(a) for a in tiny_checkpoints.ARCHITECTURES])
def test_openvino_fuses_the_exported_attention(repository: Path, name: str) -> None:
    """The exported graph computes attention as MatMul-Softmax-MatMul (issue 28); OpenVINO's CPU plugin compiles
    each such block into one fused subgraph, so no Softmax runs on its own (what auto gains on AST and wav2vec2,
    docs/performance.md)."""
    network = repository / contract.StepNames(name).network / "1" / contract.NETWORK_FILE
    layers = [op.get_rt_info()["layerType"].astype(str) for op in _compiled(network).get_runtime_model().get_ops()]
    assert layers.count("Softmax") == UNFUSED_SOFTMAX.get(name, 0), layers
    assert "Subgraph" in layers


def _compiled(network: Path) -> openvino.CompiledModel:
    engine = engines.load(engines.OPENVINO, network, threads=1)
    assert isinstance(engine, engines.OpenVino)
    return engine.compiled
