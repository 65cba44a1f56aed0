"""How long an export will take: ``estimated_time`` in the HF API's loading answer.

A line in the checkpoint's size (a fixed part: starting the export process, importing torch, the parity runs;
and a part per byte of weights), scaled by how past exports on this machine compared with it. The priors are
what exports took on the project's 2-core CPU machines (README, "Any Hub id, on demand").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

PRIOR_FIXED_S = 8.0  # a tiny checkpoint: process start, imports, ONNX export and parity runs
PRIOR_S_PER_GB = 30.0  # wav2vec2-base (378 MB of weights): about 19 s in all (make bench-on-demand)
SMOOTHING = 0.5  # weight of the newest export in the running correction


@dataclass
class ExportTimes:
    fixed_s: float = PRIOR_FIXED_S
    s_per_gb: float = PRIOR_S_PER_GB
    scale: float = 1.0  # measured / predicted, smoothed over past exports
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _model(self, weight_bytes: int) -> float:
        return self.fixed_s + self.s_per_gb * weight_bytes / 1e9

    def estimate(self, weight_bytes: int) -> float:
        """Seconds an export of a checkpoint with ``weight_bytes`` of weights should take here."""
        with self._lock:
            return self.scale * self._model(weight_bytes)

    def record(self, weight_bytes: int, seconds: float) -> None:
        """An export finished in ``seconds``: later estimates lean toward what this machine does."""
        with self._lock:
            ratio = seconds / self._model(weight_bytes)
            self.scale = (1 - SMOOTHING) * self.scale + SMOOTHING * ratio
