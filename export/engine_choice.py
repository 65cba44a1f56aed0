"""Which engine runs a network fastest on this machine (``--engine auto``): each candidate that passed its check
(fp32: the parity check, each engine on the same ``model.onnx``; int8: the gate, each engine on its own int8
network; bf16: OpenVINO in bf16 beside the exact engines), timed on one clip of the model's own window at
batch 1, the median of a few runs.

The candidates take turns, one run each per round, rather than one candidate's runs after the other's: a shared
machine's speed drifts (these machines ran the same forward pass 1.5x faster an hour apart), and in turns a
drift moves every candidate's figures alike. A pause before each run lets the previous one's thread pool stop
spinning, which would slow the next one's figures."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triton_steps import engines

TIMED_RUNS = 5
PAUSE_S = 0.25


@dataclass(frozen=True)
class Candidate:
    engine: str  # a name of triton_steps.engines
    network: Path  # its ONNX file
    precision: str = engines.FP32  # what it computes in


def fastest(candidates: dict[str, Candidate], feed: dict[str, np.ndarray], threads: int) -> dict[str, float]:
    """Each candidate's milliseconds per run of ``feed`` with ``threads`` threads, by the candidates' labels."""
    loaded = {label: engines.load(c.engine, c.network, threads, c.precision) for label, c in candidates.items()}
    for engine in loaded.values():
        engine.run(feed)  # warm: first-run allocations, OpenVINO's compilation for the shape
    runs: dict[str, list[float]] = {label: [] for label in loaded}
    for _ in range(TIMED_RUNS):
        for label, engine in loaded.items():
            time.sleep(PAUSE_S)
            started = time.perf_counter()
            engine.run(feed)
            runs[label].append(time.perf_counter() - started)
    return {label: statistics.median(times) * 1000 for label, times in runs.items()}
