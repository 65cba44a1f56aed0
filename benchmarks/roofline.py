"""How close an engine runs to this CPU's own limit: the floating-point work of one clip, and the CPU's fp32
matrix-multiply peak, measured here.

An exact fp32 engine cannot do a clip's work faster than the CPU multiplies matrices at its best, so
``peak / (pipeline's clips/s x FLOPs per clip)`` bounds what any exact engine can reach against the pipeline:
a ratio target above that bound is forbidden by the hardware, and one just under it asks every operator of the
network (attention, norms, activations) to run as fast as one large matrix product.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

GEMM_SIZE = 2048  # large enough to reach the BLAS's peak, small enough to fit the caches of these machines


def _best_gflops(multiply: Callable[[], object], size: int, seconds: float) -> float:
    flops = 2 * size**3
    multiply()  # warm-up: thread pools, packing buffers
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        began = time.perf_counter()
        multiply()
        best = max(best, flops / (time.perf_counter() - began) / 1e9)
    return best


def matmul_peak_gflops(threads: int, seconds: float = 2.0, size: int = GEMM_SIZE) -> float:
    """The best fp32 GFLOP/s of one square matrix product on ``threads`` threads: the better of torch's BLAS
    and numpy's, each at its best call (a peak, not a mean: it stands for what the hardware allows)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        by_torch = _best_gflops(lambda: torch.mm(ta, tb), size, seconds / 2)
    finally:
        torch.set_num_threads(previous)
    with threadpool_limits(limits=threads, user_api="blas"):
        by_numpy = _best_gflops(lambda: a @ b, size, seconds / 2)
    return max(by_torch, by_numpy)


def gflop_per_clip(checkpoint: Path, seconds: float, rate: int = 16000) -> float:
    """The floating-point work (GFLOP, a multiply-add counted as 2) of the checkpoint's network on one clip of
    ``seconds``, counted by torch on its eager attention: the fused kernels (SDPA) are not counted by torch's
    counter on the CPU, and attention is up to a fifth of a long clip's work."""
    model = AutoModelForAudioClassification.from_pretrained(checkpoint, attn_implementation="eager").eval()
    extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    waveform = np.zeros(int(seconds * rate), dtype=np.float32)
    inputs = extractor(waveform, sampling_rate=rate, return_tensors="pt")
    # no_grad, not inference_mode: under the counter, inference_mode breaks weight-normed convolutions
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**inputs)
    return counter.get_total_flops() / 1e9


def figures(gflop: float, peak_gflops: float, pipeline: float, forward: float, served: float) -> dict[str, float]:
    """A row's work against the peak, from its throughputs (clips/s): the share of the peak each way reached,
    and the ceiling, the most an exact engine could reach against the pipeline here."""
    return {
        "gflop_per_clip": gflop,
        "peak_gflops": peak_gflops,
        "pipeline_of_peak": pipeline * gflop / peak_gflops,
        "forward_of_peak": forward * gflop / peak_gflops,
        "served_of_peak": served * gflop / peak_gflops,
        "ceiling_vs_pipeline": peak_gflops / (pipeline * gflop),
    }
