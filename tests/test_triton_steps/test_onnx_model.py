"""The local network step (triton_steps.onnx_model) loads the engine and precision its config names, and a bf16
network on a CPU without bf16 fails to load saying why (Triton shows that reason for the model)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format, text_format
from helpers import NO_BF16_CPU, ROOT
from tritonclient.grpc import model_config_pb2 as mc

from triton_steps import contract, engines

STEP = ROOT / "model_repository" / "keyword-spotter_onnx"


def _step(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **parameters: str):
    """The step's model, as Triton's Python backend would create it, for the default model's network with
    ``parameters`` set in its config; (the model, the args its ``initialize`` takes)."""
    pb_utils = types.ModuleType("triton_python_backend_utils")  # the part of Triton's module initialize uses
    pb_utils.triton_string_to_numpy = {"TYPE_FP32": np.float32}.__getitem__
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", pb_utils)
    monkeypatch.delitem(sys.modules, "triton_steps.triton_io", raising=False)
    monkeypatch.delitem(sys.modules, "triton_steps.onnx_model", raising=False)
    from triton_steps import onnx_model

    config = text_format.Parse((STEP / contract.CONFIG_FILE).read_text(), mc.ModelConfig())
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    (tmp_path / contract.VERSION_DIR).mkdir()
    (tmp_path / contract.VERSION_DIR / contract.NETWORK_FILE).symlink_to(
        STEP / contract.VERSION_DIR / contract.NETWORK_FILE
    )
    args = {
        "model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
        "model_repository": str(tmp_path),
        "model_version": contract.VERSION_DIR,
    }
    return onnx_model.TritonPythonModel(), args


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
