"""The one room that talks to Triton: its management API (readiness, the repository index, configs, load,
unload, statistics) and inference, over gRPC with tritonclient, for every part of the project.

``TritonControl`` blocks (the model-store sync and its stub healer, ``local_triton``, tests); ``AsyncTritonControl``
is the same API for asyncio (the gateway). Both raise ``TritonError`` and nothing else for what Triton answers or
fails to answer. Torch-free: it stands on ``triton_steps.contract`` and tritonclient only.
"""

from triton_control.client import AsyncTritonControl, ModelState, ModelStatistics, TritonControl
from triton_control.errors import TritonError

__all__ = ["AsyncTritonControl", "ModelState", "ModelStatistics", "TritonControl", "TritonError"]
