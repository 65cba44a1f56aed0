"""Triton Python-backend model: audio file bytes -> the network's inputs.

In chunk mode (``--long-audio chunk``) it instead cuts the clip into windows, runs the network step on them
(Business Logic Scripting, up to ``max_batch_size`` windows per call) and outputs every window's logits, which
the postprocess step aggregates.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from triton_steps import audio, contract, long_audio, triton_io
from triton_steps.features import ModelInputs, extractor_from_config


class NetworkError(RuntimeError):
    """The network step failed on this request's windows."""


class Decoding:
    """A request's AUDIO -> its waveform, and the network's inputs as the checkpoint's extractor makes them
    (from the model directory's ``contract.EXTRACTOR_FILE`` and the config's length parameters)."""

    def __init__(self, args: dict[str, str]) -> None:
        params = triton_io.parameters(args)
        config = json.loads((triton_io.model_dir(args) / contract.EXTRACTOR_FILE).read_text(encoding="utf-8"))
        self.extractor = extractor_from_config(config, min_length=int(params.get(contract.MIN_SAMPLES, "1")))
        self.max_seconds = float(params[contract.MAX_SECONDS]) if params.get(contract.MAX_SECONDS) else None

    def waveform(self, request: Any) -> np.ndarray:
        data = triton_io.scalar(request, contract.AUDIO.name)
        extractor = self.extractor
        return audio.load(bytes(data), extractor.sampling_rate, extractor.min_samples(), self.max_seconds)

    def features(self, request: Any) -> ModelInputs:
        return self.extractor(self.waveform(request))


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        triton_io.one_blas_thread()
        params = triton_io.parameters(args)
        self.decoding = Decoding(args)
        self.outputs = {
            out["name"]: triton_io.numpy_dtype(out["data_type"]) for out in triton_io.model_config(args)["output"]
        }
        self.chunking = long_audio.from_parameters(params)
        if self.chunking is not None:
            self.network = params[contract.NETWORK]
            self.network_inputs = triton_io.network_inputs(params)
            self.batch = triton_io.max_batch_size(args)

    def _window_logits(self, waveform: np.ndarray) -> np.ndarray:
        """Every window's logits ``(windows, labels)``, the windows sent to the network in batches."""
        logits = []
        for group in long_audio.window_batches(waveform, self.chunking, self.decoding.extractor, self.batch):
            inputs = [
                pb_utils.Tensor(name, np.stack([f[name] for f in group]).astype(dtype))
                for name, dtype in self.network_inputs.items()
            ]
            request = pb_utils.InferenceRequest(
                model_name=self.network, requested_output_names=[contract.LOGITS], inputs=inputs
            )
            response = request.exec()
            if response.has_error():
                raise NetworkError(response.error().message())
            logits.append(pb_utils.get_output_tensor_by_name(response, contract.LOGITS).as_numpy())
        return np.concatenate(logits)

    def _features(self, request: Any) -> Any:
        if self.chunking is not None:
            logits = self._window_logits(self.decoding.waveform(request))
            return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(contract.LOGITS, logits[None])])
        inputs = self.decoding.features(request)
        tensors = [pb_utils.Tensor(name, inputs[name][None].astype(dtype)) for name, dtype in self.outputs.items()]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests: list[Any]) -> list[Any]:
        return triton_io.respond_each(requests, self._features, (audio.AudioError,), "preprocessing")
