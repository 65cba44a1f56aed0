"""Triton Python-backend model of a ``--single-step`` export: a clip's bytes -> LABELS and SCORES in one step.

It decodes and extracts features as the preprocess step does, runs the network on the CPU engine the export
chose as the network step does, and ranks as the postprocess step does (the same code: their classes), in one
process: what the three-step ensemble computes, without two stub round trips and the ensemble's scheduling
(measured on the keyword spotter: about 2 ms less per request). CPU serving only: local mode and the slim CPU
image, whose network step is a Python process anyway.
"""

from __future__ import annotations

import json
from typing import Any

from triton_steps import audio, contract, scores, triton_io
from triton_steps.onnx_model import load_network
from triton_steps.postprocess_model import Ranking
from triton_steps.preprocess_model import Decoding


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        triton_io.one_blas_thread()
        self.decoding = Decoding(args)
        self.network = load_network(args)
        self.ranking = Ranking(args)
        params = triton_io.parameters(args)
        self.network_inputs = {
            name: triton_io.numpy_dtype(t) for name, t in json.loads(params[contract.NETWORK_INPUTS]).items()
        }

    def _classify(self, request: Any) -> Any:
        inputs = self.decoding.features(request)
        feed = {name: inputs[name][None].astype(dtype, copy=False) for name, dtype in self.network_inputs.items()}
        (logits,) = self.network.run(feed)
        return self.ranking.response(request, logits[0])

    def execute(self, requests: list[Any]) -> list[Any]:
        client_errors = (audio.AudioError, scores.ParameterError)
        return triton_io.respond_each(requests, self._classify, client_errors, "classification")
