"""Triton Python-backend model that runs ``model.onnx`` with onnxruntime.

Only for the tritonserver of the ``nvidia-pytriton`` wheel, which has no onnxruntime backend: the local
launcher installs it as a Python-based backend named ``onnxruntime`` (see ``local_triton.server``), so it
runs every ``onnxruntime_onnx`` step. It reads the same model file and the same thread parameters
(``contract.INTRA_OP_THREADS``, ``contract.INTER_OP_THREADS``) as Triton's native onnxruntime backend.
"""

from __future__ import annotations

import traceback
from collections import defaultdict
from typing import Any

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils

from triton_steps import contract, triton_io


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        params = triton_io.parameters(args)
        config = triton_io.model_config(args)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(params.get(contract.INTRA_OP_THREADS, "0"))  # 0: onnxruntime picks
        options.inter_op_num_threads = int(params.get(contract.INTER_OP_THREADS, "0"))
        path = triton_io.model_dir(args) / args["model_version"] / contract.NETWORK_FILE
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i["name"]: triton_io.numpy_dtype(i["data_type"]) for i in config["input"]}
        self.outputs = [o["name"] for o in config["output"]]

    def _run(self, requests: list[Any]) -> list[Any]:
        """Run requests whose inputs share shapes as one batch, as the native backend does."""
        arrays = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs} for r in requests
        ]
        feed = {name: np.concatenate([a[name] for a in arrays]).astype(dtype) for name, dtype in self.inputs.items()}
        results = self.session.run(self.outputs, feed)
        sizes = np.cumsum([len(a[next(iter(self.inputs))]) for a in arrays])[:-1]
        split = [np.split(result, sizes) for result in results]
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, split[j][i]) for j, n in enumerate(self.outputs)]
            )
            for i in range(len(requests))
        ]

    def execute(self, requests: list[Any]) -> list[Any]:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            shapes = tuple(pb_utils.get_input_tensor_by_name(request, n).as_numpy().shape[1:] for n in self.inputs)
            groups[shapes].append(index)
        responses: list[Any] = [None] * len(requests)
        for indices in groups.values():
            try:
                for index, response in zip(indices, self._run([requests[i] for i in indices]), strict=True):
                    responses[index] = response
            except Exception as error:  # noqa: BLE001 - fail this group only
                traceback.print_exc()
                for index in indices:
                    responses[index] = triton_io.error_response(f"inference failed: {error}", False)
        return responses
