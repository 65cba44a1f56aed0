"""The exact CPU engines that run a network's ``model.onnx``: onnxruntime, or OpenVINO with f32 forced.

Both read the same ONNX file. OpenVINO's CPU plugin computes in bf16 by default where the CPU has bf16
instructions, which is not exact: ``INFERENCE_PRECISION_HINT`` is set to f32 here, always. Which engine a model
runs is chosen at export (``--engine``; ``auto`` measures both on the exporting machine) and recorded in the
network step's config (``contract.ENGINE``) and the model's metadata; the local network step
(``triton_steps.onnx_model``) loads it with ``load``. The exporter checks each engine against torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
ENGINES = (ONNXRUNTIME, OPENVINO)


class Engine(Protocol):
    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The network's outputs, in the model's output order, for the inputs in ``feed`` (by name)."""
        ...


# Each engine imports its library when it is loaded: a network step's process holds one of them, not both.
class OnnxRuntime:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime picks
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = [output.name for output in self.session.get_outputs()]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.outputs, feed)


class OpenVino:
    def __init__(self, path: Path, threads: int) -> None:
        import openvino
        from openvino import properties

        config: dict[str, object] = {properties.hint.inference_precision: openvino.Type.f32}
        if threads > 0:
            config[properties.inference_num_threads] = threads
        self.compiled = openvino.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer(feed)
        # Copies: the request reuses its output buffers on the next call.
        return [np.array(results[output]) for output in self.compiled.outputs]


def load(name: str, path: Path, threads: int = 0) -> Engine:
    """``name``'s session on ``path``, with ``threads`` intra-op threads (0: the engine picks)."""
    if name == ONNXRUNTIME:
        return OnnxRuntime(path, threads)
    if name == OPENVINO:
        return OpenVino(path, threads)
    raise ValueError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
