"""Triton Python-backend model of a ``--single-step`` export: a clip's bytes -> LABELS and SCORES in one step.

It decodes and extracts features as the preprocess step does, runs the network on the CPU engine the export
chose as the network step does, and ranks as the postprocess step does (the same code: their classes), in one
process: what the three-step ensemble computes, without two stub round trips and the ensemble's scheduling
(measured on the keyword spotter: about 2 ms less per request). The requests Triton's dynamic batcher hands one
``execute`` run the network together where their inputs share shapes (``triton_steps.batching``), as the
ensemble's network step runs them. CPU serving only: local mode and the slim CPU image, whose network step is
a Python process anyway.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from triton_steps import audio, batching, contract, long_audio, scores, triton_io
from triton_steps.features import ModelInputs
from triton_steps.onnx_model import joined, load_network
from triton_steps.postprocess_model import Ranking
from triton_steps.preprocess_model import Decoding

CLIENT_ERRORS = (audio.AudioError, scores.ParameterError)


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
        # absent (exported before single steps batched): each request runs alone, as they then did
        self.batched_example_limit = int(params.get(contract.BATCHED_EXAMPLE_LIMIT, "1"))

    def _run(self, features: list[ModelInputs]) -> np.ndarray:
        """The network's logits for same-shape ``features``, as one batch."""
        feed = {name: joined([f[name][None] for f in features], dtype) for name, dtype in self.network_inputs.items()}
        (logits,) = self.network.run(feed)
        return logits

    def _classify_chunked(self, request: Any) -> Any:
        # every window's logits (windows, labels), the windows run in batches as the ensemble's preprocess step
        # sends them to its network step; the ranking aggregates them
        waveform = self.decoding.waveform(request)
        batches = long_audio.window_batches(waveform, self.chunking, self.decoding.extractor, self.batch)
        return self.ranking.response(request, np.concatenate([self._run(batch) for batch in batches]))

    def _respond(self, item: tuple[Any, Any]) -> Any:
        """A request's response: its ranking, or the error it failed with before."""
        request, logits = item
        return logits.response if isinstance(logits, triton_io.Failed) else self.ranking.response(request, logits)

    def _logits(self, features: list[Any]) -> list[Any]:
        """Each request's logits, or how it failed (its features, or its run); same-shape requests run as one
        batch."""
        shapes = [
            None if isinstance(f, triton_io.Failed) else tuple(f[name].shape for name in self.network_inputs)
            for f in features
        ]
        rows = batching.in_runs(
            shapes, self.batched_example_limit, lambda run: list(self._run([features[i] for i in run]))
        )
        outcomes = []
        for feature, row in zip(features, rows, strict=True):  # row None: the features failed (no run)
            if isinstance(row, Exception):
                row = triton_io.Failed(triton_io.run_failed(row))
            outcomes.append(feature if row is None else row)
        return outcomes

    def execute(self, requests: list[Any]) -> list[Any]:
        if self.chunking is not None:
            return triton_io.respond_each(requests, self._classify_chunked, CLIENT_ERRORS, "classification")
        features = triton_io.try_each(requests, self.decoding.features, CLIENT_ERRORS, "preprocessing")
        outcomes = list(zip(requests, self._logits(features), strict=True))
        return triton_io.respond_each(outcomes, self._respond, CLIENT_ERRORS, "postprocessing")
