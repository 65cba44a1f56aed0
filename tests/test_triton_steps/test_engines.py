"""triton_steps.engines: onnxruntime and OpenVINO run the same model.onnx to the same outputs, OpenVINO with
f32 forced (its CPU default is bf16 where the CPU has it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino
import pytest
from openvino import properties

from triton_steps import engines

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


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown engine 'tensorflow'"):
        engines.load("tensorflow", NETWORK)
