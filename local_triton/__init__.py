"""Run a model repository on the real tritonserver shipped in the ``nvidia-pytriton`` wheel (no Docker).

That build has no onnxruntime backend, so ``server`` gives it a Python-based backend named ``onnxruntime``
that runs each ``onnxruntime_onnx`` step's own ``model.onnx`` through onnxruntime (``triton_steps.onnx_model``):
the repository is served as exported, from a folder or from S3. ``server`` starts, waits for and stops the
process; ``serve`` is ``make serve``; ``perf`` is ``make perf``.
"""
