"""A Triton Python model with an export's inputs, outputs and labels that computes nothing: it reads each
request's AUDIO and answers every label at an equal score. What one request costs the served stack with no
work done (gRPC, Triton's scheduling, a stub's round trip, and the gateway in front): the floor
``benchmarks.serving_latency`` measures beside the real layouts. A benchmark's instrument, never served."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from triton_steps import contract


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        labels = json.loads((Path(args["model_repository"]) / contract.LABELS_FILE).read_text(encoding="utf-8"))
        self.outputs = [
            pb_utils.Tensor(contract.LABELS.name, np.array([[label.encode() for label in labels]], dtype=np.object_)),
            pb_utils.Tensor(contract.SCORES.name, np.full((1, len(labels)), 1 / len(labels), dtype=np.float32)),
        ]

    def execute(self, requests: list[Any]) -> list[Any]:
        for request in requests:
            pb_utils.get_input_tensor_by_name(request, contract.AUDIO.name).as_numpy()
        return [pb_utils.InferenceResponse(output_tensors=self.outputs) for _ in requests]
