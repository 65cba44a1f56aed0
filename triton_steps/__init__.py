"""The code Triton's Python backend runs for an exported model.

- ``audio``: file bytes -> mono waveform at the model's rate (decode, downmix, resample).
- ``features``: the checkpoint's own feature extraction (transformers-identical, numpy only).
- ``scores``: logits -> sorted labels and scores (function_to_apply, top_k).
- ``preprocess_model`` / ``postprocess_model`` / ``onnx_model``: the ``TritonPythonModel`` classes that the
  generated ``model.py`` files of a repository import.
- ``metadata``: what the exporter records about a model, and the gateway reads.
- ``blas``: the environment every launcher gives tritonserver so that the steps' numpy runs this CPU's kernels.

The exporter and the tests import the same modules; there is no second copy.
"""
