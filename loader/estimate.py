"""How long an export will take: ``estimated_time`` in the HF API's loading answer.

A line in the checkpoint's size (a fixed part: starting the export process, importing torch, the parity runs;
and a part per byte of weights), scaled by how past exports on this machine compared with it. The priors are
what exports took on the project's 2-core CPU machines (README, "Any Hub id, on demand").
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

PRIOR_FIXED_S = 8.0  # a tiny checkpoint: process start, imports, ONNX export and parity runs
PRIOR_S_PER_GB = 30.0  # wav2vec2-base (378 MB of weights): about 19 s in all (make bench-on-demand)
TIMES_FILE = "export_times.json"  # in the loader's state folder
SMOOTHING = 0.5  # weight of the newest export in the running correction


log = logging.getLogger("loader")


@dataclass
class ExportTimes:
    fixed_s: float = PRIOR_FIXED_S
    s_per_gb: float = PRIOR_S_PER_GB
    scale: float = 1.0  # measured / predicted, smoothed over past exports
    exports: int = 0  # how many were measured (the first replaces the prior outright)
    path: Path | None = None  # where the learned scale is kept across restarts
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def kept_in(cls, path: Path, **priors: float) -> ExportTimes:
        """The times learned by earlier loaders on this machine (``path``), or the priors."""
        times = cls(path=path, **priors)
        try:
            kept = json.loads(path.read_text())
            times.scale, times.exports = float(kept["scale"]), int(kept.get("exports", 1))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("ignoring the learned export times in %s: %s", path, error)
        return times

    def _model(self, weight_bytes: int) -> float:
        return self.fixed_s + self.s_per_gb * weight_bytes / 1e9

    def estimate(self, weight_bytes: int) -> float:
        """Seconds an export of a checkpoint with ``weight_bytes`` of weights should take here."""
        with self._lock:
            return self.scale * self._model(weight_bytes)

    def record(self, weight_bytes: int, seconds: float) -> None:
        """An export finished in ``seconds``: later estimates lean toward what this machine does (and so do a
        restarted loader's)."""
        with self._lock:
            ratio = seconds / self._model(weight_bytes)
            self.scale = ratio if not self.exports else (1 - SMOOTHING) * self.scale + SMOOTHING * ratio
            self.exports += 1
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.path.with_suffix(".tmp")
                temporary.write_text(json.dumps({"scale": self.scale, "exports": self.exports}))
                os.replace(temporary, self.path)
