"""The CPU engines that run a network's ``model.onnx``: onnxruntime, or OpenVINO in f32 (exact) or bf16.

Both read the same ONNX file. OpenVINO's CPU plugin computes in bf16 by default where the CPU has bf16
instructions, which is not exact: ``INFERENCE_PRECISION_HINT`` is always set here, to f32 unless the model was
exported with ``--quantize bf16`` (opt-in, gated against fp32 at export). Which engine a model runs is chosen at
export (``--engine``; ``auto`` measures both on the exporting machine) and recorded in the network step's config
(``contract.ENGINE``, ``contract.PRECISION``) and the model's metadata; the local network step
(``triton_steps.onnx_model``) loads it with ``load``. The exporter checks each engine against torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
ENGINES = (ONNXRUNTIME, OPENVINO)
FP32 = "fp32"
BF16 = "bf16"  # OpenVINO only, on a CPU with bf16 instructions (AVX512-BF16 or AMX)
PRECISIONS = (FP32, BF16)
BF16_CAPABILITY = "BF16"  # as OpenVINO's CPU plugin lists it in OPTIMIZATION_CAPABILITIES


def compute_precision(precision: str) -> str:
    """What an engine computes in for a model of ``precision`` (the metadata's, ``--quantize``'s): bf16 for bf16,
    else fp32 (an int8 network is its own graph, which onnxruntime runs as it is)."""
    return BF16 if precision == BF16 else FP32


class UnsupportedPrecision(RuntimeError):
    """The network was exported for a precision this machine's CPU cannot compute."""


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin can compute on this machine (``FP32``, ``BF16``, ``INT8``, ...)."""
    import openvino

    return list(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def require_bf16(capabilities: list[str]) -> None:
    """``UnsupportedPrecision`` unless ``capabilities`` (``cpu_capabilities()``) include bf16: OpenVINO would
    otherwise compute in f32 in silence, slower than the fp32 export a bf16 one replaces."""
    if BF16_CAPABILITY not in capabilities:
        raise UnsupportedPrecision(
            "bf16 needs a CPU with bf16 instructions (AVX512-BF16 or AMX), and this one has none (OpenVINO "
            f"lists {', '.join(capabilities) or 'nothing'})"
        )


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
    def __init__(self, path: Path, threads: int, precision: str = FP32) -> None:
        import openvino
        from openvino import properties

        if precision == BF16:
            require_bf16(cpu_capabilities())
        types = {FP32: openvino.Type.f32, BF16: openvino.Type.bf16}
        config: dict[str, object] = {
            properties.hint.inference_precision: types[precision],
            # OpenVINO pins its threads to cores by default, unaware of the other processes on them: two
            # one-thread instances of a step pinned theirs to the same core (the keyword spotter's single step at
            # 8 clients: 490 clips/s pinned, 709 not; onnxruntime, which does not pin, 741)
            properties.hint.enable_cpu_pinning: False,
        }
        if threads > 0:
            config[properties.inference_num_threads] = threads
        self.compiled = openvino.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer(feed)
        # Copies: the request reuses its output buffers on the next call.
        return [np.array(results[output]) for output in self.compiled.outputs]


def load(name: str, path: Path, threads: int = 0, precision: str = FP32) -> Engine:
    """``name``'s session on ``path``, with ``threads`` intra-op threads (0: the engine picks), computing in
    ``precision`` (bf16: OpenVINO only; an int8 network is its own graph, run in fp32 terms by onnxruntime)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    if name == OPENVINO:
        return OpenVino(path, threads, precision)
    if precision != FP32:
        raise ValueError(f"{name} computes in {FP32} only; got {precision!r}")
    if name == ONNXRUNTIME:
        return OnnxRuntime(path, threads)
    raise ValueError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
