"""Run a model repository on the real tritonserver shipped in the ``nvidia-pytriton`` wheel (no Docker).

That build has no onnxruntime backend, so ``view`` derives a runnable view of the repository in which each
``onnxruntime_onnx`` step runs the same ``model.onnx`` through onnxruntime on the Python backend; every
other model directory is linked as it is. ``server`` starts, waits for and stops the process.
"""
