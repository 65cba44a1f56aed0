"""Triton Python-backend model: audio file bytes -> the network's inputs."""

from __future__ import annotations

import json
from typing import Any

import triton_python_backend_utils as pb_utils

from triton_steps import audio, triton_io
from triton_steps.features import extractor_from_config
from triton_steps.metadata import EXTRACTOR_FILE


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = triton_io.parameters(args)
        config = json.loads((triton_io.model_dir(args) / EXTRACTOR_FILE).read_text())
        self.extractor = extractor_from_config(config, min_length=int(params.get("min_samples", "1")))
        self.max_seconds = float(params["max_seconds"]) if params.get("max_seconds") else None
        self.outputs = {
            out["name"]: triton_io.numpy_dtype(out["data_type"]) for out in triton_io.model_config(args)["output"]
        }

    def _features(self, request: Any) -> Any:
        data = pb_utils.get_input_tensor_by_name(request, "AUDIO").as_numpy().reshape(-1)[0]
        waveform = audio.load(bytes(data), self.extractor.sampling_rate, self.extractor.min_samples(), self.max_seconds)
        inputs = self.extractor(waveform)
        tensors = [pb_utils.Tensor(name, inputs[name][None].astype(dtype)) for name, dtype in self.outputs.items()]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests: list[Any]) -> list[Any]:
        return triton_io.respond_each(requests, self._features, (audio.AudioError,), "preprocessing")
