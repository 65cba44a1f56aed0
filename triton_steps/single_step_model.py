"""Triton Python-backend model of a ``--single-step`` export: a clip's bytes -> LABELS and SCORES in one step.

It decodes and extracts features as the preprocess step does, runs the network on the CPU engine the export
chose as the network step does, and ranks as the postprocess step does (the same code: their classes), in one
process: what the three-step ensemble computes, without two stub round trips and the ensemble's scheduling
(measured on the keyword spotter: about 2 ms less per request). CPU serving only: local mode and the slim CPU
image, whose network step is a Python process anyway.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from triton_steps import audio, long_audio, scores, triton_io
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
        self.network_inputs = triton_io.network_inputs(params)
        self.chunking = long_audio.from_parameters(params)
        self.batch = triton_io.max_batch_size(args)

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
        waveform = self.decoding.waveform(request)
        batches = long_audio.window_batches(waveform, self.chunking, self.decoding.extractor, self.batch)
        return self.ranking.response(request, np.concatenate([self._run(batch) for batch in batches]))

    def execute(self, requests: list[Any]) -> list[Any]:
        client_errors = (audio.AudioError, scores.ParameterError)
        return triton_io.respond_each(requests, self._classify, client_errors, "classification")
