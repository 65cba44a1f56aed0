"""How the network step uses the CPU: onnxruntime's threads per instance, Triton's instance count, and the
largest example still run in a batch.

``auto`` (the default of ``--cpu-threads`` and ``--instances``) follows what was measured on 2 cores (README,
"Performance"): a real-size network wants one instance using every core (wav2vec2-base, 1 s clips: p50 49.5 ms
with 2 threads vs 87 ms with 1, and the same throughput under load as two one-thread instances), while a
small one is fastest on one thread, where waking a second thread costs more than it saves (the 0.6M-parameter
AST keyword spotter, served: p50 2.7 ms vs 4.4-6.7 ms with 2 threads; the 0.9M Whisper one that replaced it,
onnxruntime alone at batch 1: 0.60 vs 0.77 ms). On GPU instances the thread count does not matter.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

SMALL_MODEL_PARAMETERS = 10_000_000  # below this, auto is one thread
# Examples with more input elements than this run one at a time on the CPU. onnxruntime alone, 2 cores, ms per
# clip at batch 1 vs 4: wav2vec2-base 1 s (16,000 samples) 55 vs 47, 2 s 96 vs 91, 3 s 141 vs 139, 5 s 230 vs
# 234, 10 s 469 vs 498; AST (1024 x 128 = 131,072 features) 817 vs 879; Whisper-base (3000 x 80) 288 vs 322.
# Past a few seconds of audio, a batch's activations outgrow the caches and batching costs more than it saves.
BATCHED_EXAMPLE_LIMIT = 48_000
AUTO = None  # the value of an option left at auto


def available_cpus() -> int:
    """The CPUs this process may use: its affinity, bounded by a cgroup v2 CPU quota (a container's limit)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to honour
    return max(1, cpus)


def network_threads(requested: int | None, parameters: int) -> int:
    """onnxruntime intra-op threads per instance: ``requested``, or auto (one for a small model, else every
    CPU available to the exporter: export on, or pass ``--cpu-threads`` for, the machine that serves)."""
    if requested is not None:
        return requested
    return 1 if parameters < SMALL_MODEL_PARAMETERS else available_cpus()


def network_instances(requested: int | None) -> int:
    """Instances of the network step (per GPU on a GPU machine): ``requested``, or auto, one."""
    return 1 if requested is None else requested


def single_step_instances(requested: int | None, threads: int) -> int:
    """Instances of a ``--single-step`` model, which decodes and ranks as well as running the network: ``requested``,
    or auto, as many as the CPUs available here hold at the network's thread count (a small model: one per CPU,
    as the ensemble's two preprocess instances beside its network instance keep two cores busy)."""
    return requested if requested is not None else max(1, available_cpus() // max(1, threads))
