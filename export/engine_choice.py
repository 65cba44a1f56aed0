"""Which engine runs a network fastest on this machine (``--engine auto``): each candidate that passed its check
(fp32: the parity check, each engine on the same ``model.onnx``; int8: the gate, each engine on its own int8
network), timed on one clip of the model's own window at batch 1, the median of a few runs, one
engine at a time with a pause between them (an engine's thread pool keeps spinning for a while after its last
run, which would slow the next one's figures)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from triton_steps import engines

TIMED_RUNS = 5
PAUSE_S = 0.5


def fastest(
    networks: dict[str, Path], feed: dict[str, np.ndarray], threads: int, precision: str = engines.FP32
) -> dict[str, float]:
    """Each engine's milliseconds per run of ``feed`` on its network (``networks``: engine -> ONNX file) with
    ``threads`` threads, computing in ``precision``."""
    times = {}
    for name, path in networks.items():
        engine = engines.load(name, path, threads, precision)
        engine.run(feed)  # warm: first-run allocations, OpenVINO's compilation for the shape
        runs = []
        for _ in range(TIMED_RUNS):
            started = time.perf_counter()
            engine.run(feed)
            runs.append(time.perf_counter() - started)
        times[name] = statistics.median(runs) * 1000
        del engine
        time.sleep(PAUSE_S)
    return times
