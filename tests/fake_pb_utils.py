"""The part of Triton's ``triton_python_backend_utils`` the steps use, for running a step's model in process:
requests are dicts of input name -> ``Tensor``; responses keep their tensors or their error."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_steps import contract

# triton_steps modules that import the real one: dropped, so that they import this one instead
STEP_MODULES = ("triton_io", "onnx_model", "preprocess_model", "postprocess_model", "single_step_model")
NUMPY_TYPES = {
    "TYPE_FP32": np.float32,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_BOOL": np.bool_,
    "TYPE_STRING": np.object_,
}


@dataclass
class Tensor:
    name: str
    array: np.ndarray

    def as_numpy(self) -> np.ndarray:
        return self.array


class TritonError(Exception):
    INVALID_ARG, INTERNAL = "INVALID_ARG", "INTERNAL"

    def __init__(self, message: str, code: str = INTERNAL) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class InferenceResponse:
    output_tensors: list[Tensor] = field(default_factory=list)
    error: TritonError | None = None

    def output(self, name: str) -> np.ndarray:
        assert self.error is None, self.error
        return next(t.array for t in self.output_tensors if t.name == name)


def request(**inputs: np.ndarray) -> dict[str, Tensor]:
    """A request holding ``inputs`` (name -> array, batch axis included)."""
    return {name: Tensor(name, array) for name, array in inputs.items()}


def install(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """This module as ``triton_python_backend_utils`` for the rest of the test, the steps' modules re-imported."""
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = Tensor
    module.TritonError = TritonError
    module.InferenceResponse = InferenceResponse
    module.get_input_tensor_by_name = lambda req, name: req.get(name)
    module.triton_string_to_numpy = NUMPY_TYPES.__getitem__
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    for name in STEP_MODULES:
        monkeypatch.delitem(sys.modules, f"triton_steps.{name}", raising=False)
    return module


def model_args(model_dir: Path, config: mc.ModelConfig | None = None) -> dict[str, str]:
    """What Triton's Python backend hands ``initialize`` for the model in ``model_dir`` (its config.pbtxt, or
    ``config``)."""
    if config is None:
        config = text_format.Parse((model_dir / contract.CONFIG_FILE).read_text(), mc.ModelConfig())
    return {
        "model_config": json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True)),
        "model_repository": str(model_dir),
        "model_version": contract.VERSION_DIR,
        "model_name": config.name,
    }
