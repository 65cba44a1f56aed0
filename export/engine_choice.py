"""Which engine runs a network fastest on this machine (``--engine auto``): each candidate that passed its check
(fp32: the parity check, each engine on the same ``model.onnx``; int8: the gate, each engine on its own int8
network; bf16: OpenVINO in bf16 beside the exact engines), timed on the work the network step will be given
(``Workload``s: one clip of the model's own window, run alone, and where short clips are batched a full batch of
them), the median of a few runs of each, and ranked by the geometric mean of its times per clip. Engines rank
differently on the two: measured on wav2vec2-base (2 threads, Intel Xeon), onnxruntime and OpenVINO took 692
and 693 ms on a 10 s clip, and 77 and 67 ms per clip on a batch of eight 1 s clips.

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


@dataclass(frozen=True)
class Workload:
    """Network inputs a candidate is timed on."""

    feed: dict[str, np.ndarray]
    clips: int  # how many clips the feed holds (its batch)
    label: str  # what it is, for the export's log: "1 clip of 10 s"


def fastest(candidates: dict[str, Candidate], workloads: list[Workload], threads: int) -> dict[str, float]:
    """Each candidate's milliseconds per clip with ``threads`` threads (the geometric mean over ``workloads``),
    by the candidates' labels."""
    loaded = {label: engines.load(c.engine, c.network, threads, c.precision) for label, c in candidates.items()}
    for engine in loaded.values():
        for workload in workloads:
            engine.run(workload.feed)  # warm: first-run allocations, OpenVINO's compilation for the shape
    runs: dict[tuple[str, int], list[float]] = {(label, w): [] for label in loaded for w in range(len(workloads))}
    for _ in range(TIMED_RUNS):
        for index, workload in enumerate(workloads):
            for label, engine in loaded.items():
                time.sleep(PAUSE_S)
                started = time.perf_counter()
                engine.run(workload.feed)
                runs[label, index].append((time.perf_counter() - started) / workload.clips)
    return {
        label: statistics.geometric_mean(statistics.median(runs[label, w]) for w in range(len(workloads))) * 1000
        for label in loaded
    }
