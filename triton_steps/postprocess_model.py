"""Triton Python-backend model: logits -> LABELS and SCORES (function_to_apply, top_k)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from triton_steps import contract, scores, triton_io


class Ranking:
    """Logits -> the LABELS and SCORES response, with the request's TOP_K and FUNCTION_TO_APPLY (or the
    model's default function, from the config) over the model directory's ``contract.LABELS_FILE``."""

    def __init__(self, args: dict[str, str]) -> None:
        labels: list[str] = json.loads((triton_io.model_dir(args) / contract.LABELS_FILE).read_text(encoding="utf-8"))
        self._labels = np.array([label.encode() for label in labels], dtype=np.object_)  # as LABELS carries them
        self.default_function = scores.check_function(triton_io.parameters(args)[contract.FUNCTION_TO_APPLY_DEFAULT])

    def response(self, request: Any, logits: np.ndarray) -> Any:
        """``logits``: ``(labels,)``, or ``(windows, labels)`` for a chunked clip."""
        top_k = triton_io.optional_scalar(request, contract.TOP_K.name)
        function = triton_io.optional_scalar(request, contract.FUNCTION_TO_APPLY.name)
        if isinstance(function, bytes):
            function = function.decode("utf-8", errors="replace")
        order, values = scores.ranked(
            logits,
            len(self._labels),
            self.default_function if function is None else str(function),
            None if top_k is None else int(top_k),
        )
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(contract.LABELS.name, self._labels[order][None]),
                pb_utils.Tensor(contract.SCORES.name, values[None]),
            ]
        )


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.ranking = Ranking(args)

    def _rank(self, request: Any) -> Any:
        logits = pb_utils.get_input_tensor_by_name(request, contract.LOGITS).as_numpy()[0]
        return self.ranking.response(request, logits)

    def execute(self, requests: list[Any]) -> list[Any]:
        return triton_io.respond_each(requests, self._rank, (scores.ParameterError,), "postprocessing")
