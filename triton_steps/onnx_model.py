"""Triton Python-backend model that runs ``model.onnx`` with the exact CPU engine the export chose.

Only for the tritonserver of the ``nvidia-pytriton`` wheel (local mode and the slim CPU image), which has no
onnxruntime backend: the local launcher installs it as a Python-based backend named ``onnxruntime`` (see
``local_triton.tritonserver``), so it runs every ``onnxruntime_onnx`` step. It reads the same model file and
thread parameter (``contract.INTRA_OP_THREADS``) as Triton's native onnxruntime backend, and two of its own:
``contract.ENGINE`` (onnxruntime or OpenVINO, ``triton_steps.engines``; absent: onnxruntime),
``contract.PRECISION`` (fp32, or bf16 on OpenVINO; absent: fp32) and
``contract.BATCHED_EXAMPLE_LIMIT`` (see ``triton_steps.batching``). Triton's native backend, on the NGC image,
ignores both and runs onnxruntime.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from triton_steps import batching, contract, engines, triton_io


def load_network(args: dict[str, str]) -> engines.Engine:
    """The model's ``contract.NETWORK_FILE`` on the engine, threads and precision its config names."""
    params = triton_io.parameters(args)
    path = triton_io.model_dir(args) / args["model_version"] / contract.NETWORK_FILE
    threads = int(params.get(contract.INTRA_OP_THREADS, "0"))  # 0: the engine picks
    engine = params.get(contract.ENGINE, engines.ONNXRUNTIME)
    # absent (exported before bf16 existed): fp32. A bf16 network on a CPU without bf16 fails to load here,
    # saying so (engines.UnsupportedPrecision), rather than run slower than its fp32 export in silence.
    precision = params.get(contract.PRECISION, engines.FP32)
    try:
        return engines.load(engine, path, threads, precision)
    except engines.UnsupportedPrecision as error:
        raise engines.UnsupportedPrecision(
            f"this network was exported with --quantize {precision}: {error}; serve it on a CPU that has "
            "them, or export the model again in fp32 or int8"
        ) from error


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = triton_io.parameters(args)
        config = triton_io.model_config(args)
        self.engine = load_network(args)
        # 0 or absent (a repository exported before the limit existed): batch every size, as the native backend
        self.batched_example_limit = int(params.get(contract.BATCHED_EXAMPLE_LIMIT, "0"))
        self.inputs = {i["name"]: triton_io.numpy_dtype(i["data_type"]) for i in config["input"]}
        self.outputs = [o["name"] for o in config["output"]]

    def _run(self, arrays: list[dict[str, np.ndarray]]) -> list[Any]:
        """Run same-shape requests (their input arrays by name) as one batch."""
        feed = {name: joined([a[name] for a in arrays], dtype) for name, dtype in self.inputs.items()}
        results = self.engine.run(feed)
        sizes = np.cumsum([len(a[next(iter(self.inputs))]) for a in arrays])[:-1]
        split = [np.split(result, sizes) for result in results]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, split[j][i]) for j, n in enumerate(self.outputs)]
            )
            for i in range(len(arrays))
        ]

    def execute(self, requests: list[Any]) -> list[Any]:
        arrays = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
        shapes = [tuple(a[n].shape[1:] for n in self.inputs) for a in arrays]
        results = batching.in_runs(shapes, self.batched_example_limit, lambda run: self._run([arrays[i] for i in run]))
        return [triton_io.run_failed(r) if isinstance(r, Exception) else r for r in results]


def joined(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """One batch of ``parts`` in ``dtype``. A lone request (every request at low load) goes as it is: copying
    cost Whisper-base's 960 kB of features 0.23 ms of this step's 0.66 ms beyond onnxruntime's run."""
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)).astype(dtype, copy=False)
