"""Where a network's forward pass spends its time, by kind of operator, in torch (the pipeline's engine),
onnxruntime and OpenVINO (f32), beside the CPU's fp32 matrix-multiply peak (``benchmarks.roofline``).

The kinds: ``linear`` (products with a weight matrix: the linear layers), ``convolution``, ``attention`` (the
products of activations with each other and their softmax; OpenVINO fuses these with their elementwise
neighbours into one ``Subgraph`` node, counted here) and ``other`` (norms, activations, additions, layout).
The work of linear layers and convolutions is the same in every engine (the same products), so it is counted
once, from the shapes onnxruntime's profiler records, and each engine's time for a kind gives its GFLOP/s.
This is how the README's claims on the hardware's limit were measured:

    .venv/bin/python -m benchmarks.op_profile --model wav2vec2-base --seconds 1 --batch 1,4

It uses ``make bench``'s random-weight checkpoint and export (``.run/bench``), building them if missing.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks import real_size_models, roofline
from triton_steps import engines

KINDS = ("linear", "convolution", "attention", "other")
ENGINE_LABELS = {"onnxruntime": engines.ONNXRUNTIME, "OpenVINO f32": engines.OPENVINO}
LINEAR_OPS = {"MatMul", "FusedMatMul", "Gemm"}
TORCH_KINDS = {  # torch's operators by the kind they compute (self time: each kernel once)
    "aten::addmm": "linear",
    "aten::mm": "linear",
    "aten::mkldnn_convolution": "convolution",
    "aten::_slow_conv2d_forward": "convolution",
    "aten::convolution_overrideable": "convolution",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "attention",
    "aten::bmm": "attention",
    "aten::_softmax": "attention",
}
OPENVINO_KINDS = {
    "FullyConnected": "linear",
    "Convolution": "convolution",
    "GroupConvolution": "convolution",
    "MatMul": "attention",  # OpenVINO folds weight products into FullyConnected: a MatMul left is attention's
    "Subgraph": "attention",
    "ScaledDotProductAttention": "attention",
    "Softmax": "attention",
}


def _numel(shape: list[int]) -> int:
    return math.prod(shape)


def node_kind_and_flops(op_type: str, inputs: list[list[int]], output: list[int]) -> tuple[str, float]:
    """An onnxruntime node's kind, and its FLOP (a multiply-add is 2) from its input and output shapes."""
    if op_type == "Conv":
        weight = inputs[1]  # (out channels, in channels / groups, *kernel)
        return "convolution", 2.0 * _numel(output) * _numel(weight[1:])
    if op_type in LINEAR_OPS:
        a = inputs[0]
        # the shared axis: a's last, or its second last when it is transposed (FusedMatMul, Gemm's transA)
        shared = a[-2] if len(a) >= 2 and a[-1] == output[-2] and a[-2] != output[-2] else a[-1]
        # onnxruntime prepacks a weight matrix and records only the activation; a product of two activations
        # (attention's) records both, with their head axes
        kind = "attention" if op_type != "Gemm" and len(inputs) > 1 and len(inputs[1]) > 2 else "linear"
        return kind, 2.0 * _numel(output) * shared
    if op_type == "Softmax":
        return "attention", 0.0
    return "other", 0.0


def _shapes(entries: list[dict[str, list[int]]]) -> list[list[int]]:
    return [next(iter(entry.values())) for entry in entries]


def onnxruntime_profile(
    path: Path, feed: dict[str, np.ndarray], threads: int, runs: int
) -> tuple[dict[str, float], dict[str, float]]:
    """onnxruntime's milliseconds per run by kind, and the work per run by kind (GFLOP), after a warm-up run."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "onnxruntime")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, feed)
    session.run(None, feed)  # the warm-up runs are profiled too: subtracted below by counting runs
    for _ in range(runs):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    shutil.rmtree(trace.parent)
    ms: dict[str, float] = collections.Counter()
    gflop: dict[str, float] = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        args = event["args"]
        kind, flops = node_kind_and_flops(
            args["op_name"], _shapes(args["input_type_shape"]), _shapes(args["output_type_shape"])[0]
        )
        ms[kind] += event["dur"] / 1000 / (runs + 2)
        gflop[kind] += flops / 1e9 / (runs + 2)
    return dict(ms), dict(gflop)


def openvino_profile(path: Path, feed: dict[str, np.ndarray], threads: int, runs: int) -> dict[str, float]:
    """OpenVINO's (f32) milliseconds per run by kind, from its per-node counters, after two warm-up runs."""
    import openvino
    from openvino import properties

    config = {
        properties.hint.inference_precision: openvino.Type.f32,
        properties.inference_num_threads: threads,
        properties.enable_profiling: True,
    }
    compiled = openvino.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    for _ in range(2):
        request.infer(feed)
    ms: dict[str, float] = collections.Counter()
    for _ in range(runs):
        request.infer(feed)
        for node in request.profiling_info:  # the last run's counters
            ms[OPENVINO_KINDS.get(node.node_type, "other")] += node.real_time.total_seconds() * 1000 / runs
    return dict(ms)


def torch_profile(model: torch.nn.Module, inputs: dict[str, torch.Tensor], threads: int, runs: int) -> dict[str, float]:
    """torch's milliseconds per forward pass by kind (self time of each operator), as the pipeline runs it."""
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    with torch.inference_mode():
        for _ in range(2):
            model(**inputs)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(runs):
                model(**inputs)
    ms: dict[str, float] = collections.Counter()
    for event in profiler.key_averages():
        ms[TORCH_KINDS.get(event.key, "other")] += event.self_cpu_time_total / 1000 / runs
    return dict(ms)


def wall_ms(run: Callable[[], object], runs: int) -> float:
    """The median wall time of ``run`` (ms), unprofiled, after a warm-up call."""
    run()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    return float(np.median(times))


def _rate(gflop: float, ms: float, peak: float) -> str:
    return f"{gflop / ms * 1000:4.0f} ({gflop / ms * 1000 / peak:4.0%})" if gflop and ms else ""


def table(
    batch: int, gflop: dict[str, float], ms: dict[str, dict[str, float]], walls: dict[str, float], peak: float
) -> str:
    """One batch size's figures: per kind, each engine's ms per clip and GFLOP/s (share of the peak)."""
    lines = [f"batch {batch}: ms per clip, GFLOP/s (share of the {peak:.0f} GFLOP/s peak)"]
    lines.append(f"  {'kind':12s} {'GFLOP':>7s}" + "".join(f" {engine:>24s}" for engine in ms))
    for kind in (*KINDS, "wall (all)"):
        work = (sum(gflop.values()) if kind == "wall (all)" else gflop.get(kind, 0.0)) / batch
        cells = []
        for engine, engine_ms in ms.items():
            per_clip = (walls[engine] if kind == "wall (all)" else engine_ms.get(kind, 0.0)) / batch
            cells.append(f" {per_clip:8.2f} ms {_rate(work, per_clip, peak):>13s}")
        lines.append(f"  {kind:12s} {work:7.2f}" + "".join(cells))
    return "\n".join(lines)


def _input_names(network: Path) -> set[str]:
    import onnx

    return {i.name for i in onnx.load(str(network), load_external_data=False).graph.input}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(real_size_models.MODELS), default="wav2vec2-base")
    parser.add_argument("--seconds", type=float, default=1.0, help="the clip's length (spectrogram models pad it)")
    parser.add_argument("--batch", default="1,4", help="batch sizes, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10, help="runs per engine and round")
    parser.add_argument("--rounds", type=int, default=3, help="each figure is its best round's")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parents[1] / ".run" / "bench")
    args = parser.parse_args()

    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from export.exporter import ExportOptions, export_model
    from triton_steps.contract import StepNames

    checkpoint = real_size_models.build(args.model, args.workdir / "checkpoints" / args.model)
    network = args.workdir / "repository" / StepNames(args.model).network / "1" / "model.onnx"
    if not network.exists():
        export_model(
            str(checkpoint), args.workdir / "repository", ExportOptions(name=args.model, engine=engines.ONNXRUNTIME)
        )
    model = AutoModelForAudioClassification.from_pretrained(checkpoint).eval()
    extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    network_inputs = _input_names(network)
    loaded = {label: engines.load(name, network, args.threads) for label, name in ENGINE_LABELS.items()}
    samples = int(args.seconds * extractor.sampling_rate)
    print(f"{args.model}, {args.seconds:g} s clip, {args.threads} threads, best of {args.rounds} rounds", flush=True)
    for batch in (int(b) for b in args.batch.split(",")):
        waveforms = [np.random.default_rng(i).standard_normal(samples).astype(np.float32) for i in range(batch)]
        inputs = extractor(waveforms, sampling_rate=extractor.sampling_rate, return_tensors="np")
        feed = {name: np.ascontiguousarray(value) for name, value in inputs.items() if name in network_inputs}
        torch_inputs = {name: torch.from_numpy(value) for name, value in feed.items()}
        peak, gflop = 0.0, {}
        profiles: dict[str, list[dict[str, float]]] = collections.defaultdict(list)
        walls: dict[str, list[float]] = collections.defaultdict(list)
        for _ in range(args.rounds):  # in turns, so that a drifting machine moves every engine alike
            peak = max(peak, roofline.matmul_peak_gflops(args.threads))
            profiles["torch"].append(torch_profile(model, torch_inputs, args.threads, args.runs))
            with torch.inference_mode():
                walls["torch"].append(wall_ms(lambda inputs=torch_inputs: model(**inputs), args.runs))
            ort_ms, gflop = onnxruntime_profile(network, feed, args.threads, args.runs)
            profiles["onnxruntime"].append(ort_ms)
            profiles["OpenVINO f32"].append(openvino_profile(network, feed, args.threads, args.runs))
            for label, engine in loaded.items():
                walls[label].append(wall_ms(lambda engine=engine, feed=feed: engine.run(feed), args.runs))
        best = {
            engine: {kind: min(p.get(kind, 0.0) for p in rounds) for kind in KINDS}
            for engine, rounds in profiles.items()
        }
        print(table(batch, gflop, best, {engine: min(w) for engine, w in walls.items()}, peak), flush=True)


if __name__ == "__main__":
    main()
