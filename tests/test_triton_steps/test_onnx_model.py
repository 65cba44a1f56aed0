"""The local network step (triton_steps.onnx_model) loads the engine and precision its config names, and a bf16
network on a CPU without bf16 fails to load saying why (Triton shows that reason for the model)."""

from __future__ import annotations

from pathlib import Path

import fake_pb_utils
import pytest
from google.protobuf import text_format
from helpers import NO_BF16_CPU, ROOT
from tritonclient.grpc import model_config_pb2 as mc

from triton_steps import contract, engines

STEP = ROOT / "model_repository" / "keyword-spotter_onnx"


def _step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **parameters: str):
    """The step's model, as Triton's Python backend would create it, for the default model's network with
    ``parameters`` set in its config; (the model, the args its ``initialize`` takes)."""
    fake_pb_utils.install(monkeypatch)
    from triton_steps import onnx_model

    config = text_format.Parse((STEP / contract.CONFIG_FILE).read_text(), mc.ModelConfig())
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    (tmp_path / contract.VERSION_DIR).mkdir()
    (tmp_path / contract.VERSION_DIR / contract.NETWORK_FILE).symlink_to(
        STEP / contract.VERSION_DIR / contract.NETWORK_FILE
    )
    return onnx_model.TritonPythonModel(), fake_pb_utils.model_args(tmp_path, config)


def test_the_step_runs_the_engine_its_config_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model, args = _step(monkeypatch, tmp_path, **{contract.ENGINE: engines.OPENVINO, contract.PRECISION: "fp32"})
    model.initialize(args)
    assert isinstance(model.engine, engines.OpenVino)


def test_a_bf16_network_on_a_cpu_without_bf16_fails_to_load_saying_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(engines, "cpu_capabilities", lambda: NO_BF16_CPU)
    model, args = _step(monkeypatch, tmp_path, **{contract.ENGINE: engines.OPENVINO, contract.PRECISION: "bf16"})
    with pytest.raises(engines.UnsupportedPrecision) as refused:
        model.initialize(args)
    message = str(refused.value)
    assert "exported with --quantize bf16" in message and "needs a CPU with bf16 instructions" in message
    assert "export the model again in fp32 or int8" in message
