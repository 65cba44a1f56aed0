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

import numpy as np

from triton_steps import audio, contract, long_audio, scores, triton_io
from triton_steps.features import ModelInputs
from triton_steps.onnx_model import joined, load_network
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
        self.chunking = long_audio.from_parameters(params)
        self.batch = max(1, int(triton_io.model_config(args).get("max_batch_size", 1)))  # windows per run

    def _run(self, features: list[ModelInputs]) -> np.ndarray:
        """The network's logits for same-shape ``features``, as one batch."""
        feed = {name: joined([f[name][None] for f in features], dtype) for name, dtype in self.network_inputs.items()}
        (logits,) = self.network.run(feed)
        return logits

    def _classify(self, request: Any) -> Any:
        if self.chunking is None:
            return self.ranking.response(request, self._run([self.decoding.features(request)])[0])
        # every window's logits (windows, labels), the windows run in batches as the ensemble's preprocess step
        # sends them to its network step; the ranking aggregates them
        extractor = self.decoding.extractor
        features = [extractor(window) for window in long_audio.windows(self.decoding.waveform(request), self.chunking)]
        logits = [self._run(features[start : start + self.batch]) for start in range(0, len(features), self.batch)]
        return self.ranking.response(request, np.concatenate(logits))

    def execute(self, requests: list[Any]) -> list[Any]:
        client_errors = (audio.AudioError, scores.ParameterError)
        return triton_io.respond_each(requests, self._classify, client_errors, "classification")
