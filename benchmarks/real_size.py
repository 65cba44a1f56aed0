"""The real-size benchmark (``make bench``): served throughput and latency against transformers' pipeline.

For random-weight models with the real configs of wav2vec2-base, HuBERT-base, AST base (527 labels) and a
Whisper-base encoder classifier (``real_size_models``), on 1, 10 and 30 s clips, in ONE run:
  pipeline      transformers' pipeline("audio-classification") in this process, torch on every CPU;
  preprocess    our decode + feature extraction alone (triton_steps), what the served path adds;
  forward       the served engine (onnxruntime, or OpenVINO in f32 or bf16, as exported) on the exported
                model.onnx alone, every CPU: the limit of this hardware;
  triton cN     Triton over gRPC (ensemble: decode, features, network, scores), N concurrent clients;
  gateway cN    the gateway over HTTP (aiohttp client), in front of the same Triton; also at
                --high-concurrency, where short clips fill the network step's batches.
The served stack runs as ``make serve`` runs it: Triton with the model sync and stub healer beside it.
Each row is measured in ``--rounds`` rounds, each round every way in turn (in this process, then served), and
each cell is the median over rounds: a machine whose speed drifts over minutes (shared CPUs) moves every way
of a round alike, so the ratios compare like with like.
It prints a table with the ratios to the pipeline and to the forward-only limit, and each fp32 row's work
against this CPU's fp32 matrix-multiply peak (``roofline``: the ceiling no exact engine passes), checks the
targets of the README's "Performance" section, and writes ``real_size.json`` and ``real_size.png`` into
``--results``.

    .venv/bin/python benchmarks/real_size.py [--models wav2vec2-base,ast-base] [--int8 ...] [--bf16 ...]

Each model is exported as ``make export`` does (``--engine auto``: the faster exact engine here), and the models
named by ``--int8`` and ``--bf16`` once more in that precision (int8: the faster here of onnxruntime's dynamic
int8 and NNCF's static int8 on OpenVINO that passes the gate; bf16 only on a CPU with bf16 instructions). Each
row names the engine it was served on.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import onnxruntime
import soundfile
import torch

from benchmarks import measure, real_size_models, roofline, stack
from benchmarks.serving_latency import http_post
from export.checkpoint import ExportError
from export.cpu_plan import available_cpus
from export.exporter import ExportOptions, export_model
from export.quantize import voice_like
from triton_control import AsyncTritonControl
from triton_steps import audio as audio_io
from triton_steps import contract, engines
from triton_steps.features import batch, extractor_from_config
from triton_steps.metadata import ModelMetadata

ROOT = Path(__file__).resolve().parents[1]

RATE = 16000


def wav(seconds: float, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, voice_like(int(seconds * RATE), RATE, np.random.default_rng(seed)), RATE, format="WAV")
    return buffer.getvalue()


def served_name(model: str, precision: str) -> str:
    return model if precision == "fp32" else f"{model}-{precision}"


@dataclass
class InProcess:
    """One model's in-process contenders: the served engine on the exported network, and with a baseline the
    pipeline and our preprocessing."""

    engine: engines.Engine
    served_by: str  # the engine's name, as exported (the metadata's)
    extractor: Any
    classifier: Any = None

    @classmethod
    def load(cls, checkpoint: Path, repository: Path, name: str, baseline: bool) -> InProcess:
        names = contract.StepNames(name)
        metadata = ModelMetadata.from_json((repository / name / contract.METADATA_FILE).read_text())
        config = json.loads((repository / names.preprocess / contract.EXTRACTOR_FILE).read_text())
        network = repository / names.network / contract.VERSION_DIR / contract.NETWORK_FILE
        precision = engines.compute_precision(metadata.precision)
        engine = engines.load(metadata.engine, network, available_cpus(), precision)
        classifier = None
        if baseline:
            from transformers import pipeline

            classifier = pipeline("audio-classification", model=str(checkpoint), device="cpu")
        return cls(engine, metadata.engine, extractor_from_config(config, min_length=metadata.min_samples), classifier)

    def measure(self, data: bytes, budget: tuple[int, float]) -> dict[str, measure.Result]:
        waveform = audio_io.load(data, RATE)
        inputs = batch([self.extractor(waveform)])
        results = {"forward": measure.serial(lambda: self.engine.run(inputs), *budget)}
        if self.classifier is not None:
            results["pipeline"] = measure.serial(lambda: self.classifier(waveform.copy()), *budget)
            results["preprocess"] = measure.serial(lambda: self.extractor(audio_io.load(data, RATE)), *budget)
        for key, result in results.items():
            print(f"           {key:<13} {result.line()}", flush=True)
        return results


async def served(
    triton_url: str, gateway_url: str, model: str, data: bytes, concurrency: tuple[int, int], budget: tuple[int, float]
) -> dict:
    """Triton at 1 and ``concurrency[0]`` clients; the gateway at those and at ``concurrency[1]``."""
    results = {}
    timeout = aiohttp.ClientTimeout(total=600)
    async with AsyncTritonControl(triton_url) as grpc, aiohttp.ClientSession(timeout=timeout) as http:

        async def direct() -> None:
            await grpc.classify(model, data, timeout_s=600)

        async def through_gateway() -> None:
            await http_post(http, f"{gateway_url}/models/{model}", data)

        for path, call, counts in (("triton", direct, concurrency[:1]), ("gateway", through_gateway, concurrency)):
            for clients in sorted({1, *counts}):
                results[f"{path} c{clients}"] = result = await measure.under_load(call, clients, *budget)
                print(f"           {path} c{clients:<5} {result.line()}", flush=True)
    return results


def best(row: dict[str, measure.Result], path: str) -> measure.Result:
    """The served way's best cell over its client counts (``path``: "gateway" or "triton")."""
    return max((v for k, v in row.items() if k.startswith(path)), key=lambda r: r.clips_per_s)


def ratios(row: dict) -> dict[str, float]:
    best_gateway, best_triton = best(row, "gateway"), best(row, "triton")
    return {
        "served_vs_pipeline": best_gateway.clips_per_s / row["pipeline"].clips_per_s,
        "served_vs_forward": best_gateway.clips_per_s / row["forward"].clips_per_s,
        "triton_vs_pipeline": best_triton.clips_per_s / row["pipeline"].clips_per_s,
        "p50_c1_vs_forward_plus_preprocess": row["gateway c1"].p50_ms
        / (row["forward"].p50_ms + row["preprocess"].p50_ms),
        "gateway_overhead_c1_ms": row["gateway c1"].p50_ms - row["triton c1"].p50_ms,
    }


def print_table(rows: list[dict], concurrency: tuple[int, int]) -> None:
    low, high = concurrency
    columns = [
        "pipeline",
        "forward",
        "triton c1",
        f"triton c{low}",
        "gateway c1",
        f"gateway c{low}",
        f"gateway c{high}",
    ]
    print("\nclips/s (p50 ms)")
    print(
        f"{'model':<22}{'engine':>12}{'clip':>6}  "
        + "".join(f"{c:>20}" for c in columns)
        + "   served/pipeline  served/forward"
    )
    for row in rows:
        cells = "".join(f"{row['results'][c].clips_per_s:>10.2f} ({row['results'][c].p50_ms:>6.0f})" for c in columns)
        r = row["ratios"]
        print(
            f"{row['label']:<22}{row['engine']:>12}{row['seconds']:>5g}s  {cells}   {r['served_vs_pipeline']:>14.2f}x"
            f"  {r['served_vs_forward']:>13.0%}"
        )
    peak = rows[0]["roofline"]["peak_gflops"] if rows else 0.0
    print(f"\nwork per clip against this CPU's fp32 matmul peak ({peak:.0f} GFLOP/s, the run's best)")
    print(f"{'model':<22}{'clip':>6}{'GFLOP':>9}{'pipeline':>10}{'forward':>9}{'served':>8}   exact ceiling / pipeline")
    for row in rows:
        f = row["roofline"]
        ceiling = f"{f['ceiling_vs_pipeline']:.2f}x" if row["precision"] == "fp32" else "(reduced precision)"
        print(
            f"{row['label']:<22}{row['seconds']:>5g}s{f['gflop_per_clip']:>9.1f}{f['pipeline_of_peak']:>10.0%}"
            f"{f['forward_of_peak']:>9.0%}{f['served_of_peak']:>8.0%}   {ceiling}"
        )


# (row, ratio, at least / at most, bound, how it is shown): the targets of docs/performance.md
TARGETS = [
    (("wav2vec2-base", 1.0), "served_vs_pipeline", ">=", 1.6, "served/pipeline {:.2f}x (>= 1.6x)"),
    (("wav2vec2-base", 1.0), "gateway_overhead_c1_ms", "<=", 2, "gateway - Triton p50, c1 {:+.1f} ms (<= 2)"),
    (("ast-base", 10.0), "served_vs_pipeline", ">=", 1.2, "served/pipeline {:.2f}x (>= 1.2x)"),
    (("wav2vec2-base-int8", 1.0), "served_vs_pipeline", ">=", 3.0, "served/pipeline {:.2f}x (>= 3x)"),
    (("ast-base-bf16", 10.0), "served_vs_pipeline", ">=", 2.5, "served/pipeline {:.2f}x (>= 2.5x)"),
]


# Every model and clip: the served stack keeps what the hardware gives (throughput against onnxruntime
# forward-only) and adds little to one request's latency (against forward + our preprocessing).
EVERY_ROW = [
    ("served_vs_forward", ">=", 0.95, "served/forward-only {:.1%} (>= 95%)"),
    ("p50_c1_vs_forward_plus_preprocess", "<=", 1.1, "p50 at c1 / (forward + preprocess p50) {:.2f} (<= 1.1)"),
]


def _against_peak(bound: float, row: dict) -> str:
    """What an exact row's served/pipeline target asks of the hardware: the share of the CPU's fp32 matmul
    peak that the bound needs, beside the ceiling and what the engine reached."""
    figures = row["roofline"]
    return (
        f"; exact ceiling here {figures['ceiling_vs_pipeline']:.2f}x: {bound:g}x needs"
        f" {bound / figures['ceiling_vs_pipeline']:.0%} of the fp32 matmul peak, the engine ran at"
        f" {figures['forward_of_peak']:.0%} and the pipeline at {figures['pipeline_of_peak']:.0%}"
    )


def check_targets(rows: list[dict]) -> list[str]:
    """The README's targets, as measured in this run (those whose rows were measured)."""
    found = {(row["label"], row["seconds"]): row for row in rows}
    targets = TARGETS + [(key, *target) for key in found for target in EVERY_ROW]
    checks = []
    for key, ratio, sense, bound, shown in targets:
        if key not in found:
            continue
        row = found[key]
        value = row["ratios"][ratio]
        ok = value >= bound if sense == ">=" else value <= bound
        line = f"{'met   ' if ok else 'MISSED'} {key[0]} {key[1]:g} s: {shown.format(value)}"
        if ratio == "served_vs_pipeline" and row["precision"] == "fp32":
            line += _against_peak(bound, row)
        checks.append(line)
    return checks


def plot(rows: list[dict], path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{row['label']}\n{row['seconds']:g} s" for row in rows]
    series = {
        "onnxruntime forward only": [
            r["results"]["forward"].clips_per_s / r["results"]["pipeline"].clips_per_s for r in rows
        ],
        "Triton (gRPC), best": [r["ratios"]["triton_vs_pipeline"] for r in rows],
        "gateway (HTTP), best": [r["ratios"]["served_vs_pipeline"] for r in rows],
    }
    x = np.arange(len(rows))
    figure, axes = plt.subplots(figsize=(max(8, 1.3 * len(rows)), 4.5))
    for i, (name, values) in enumerate(series.items()):
        axes.bar(x + (i - 1) * 0.27, values, 0.27, label=name)
    axes.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes.set_xticks(x, labels, fontsize=8)
    axes.set_ylabel("throughput / transformers pipeline")
    axes.set_title(f"Real-size models, random weights: {machine}", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _arguments(cpus: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(real_size_models.MODELS))
    parser.add_argument("--int8", default="wav2vec2-base", help="models also served in int8 (comma-separated)")
    parser.add_argument(
        "--bf16",
        default="ast-base",
        help="models also served in bf16 (comma-separated), where this CPU has bf16 instructions",
    )
    parser.add_argument("--clips", default="", help="only these clip lengths, in seconds (comma-separated)")
    parser.add_argument("--seconds", type=float, default=8.0, help="time budget per cell, over all rounds")
    parser.add_argument("--min-requests", type=int, default=8, help="requests per cell over all rounds, at least")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row; each cell is their median")
    parser.add_argument("--concurrency", type=int, default=2 * cpus, help="clients, beside 1 (Triton and gateway)")
    parser.add_argument(
        "--high-concurrency",
        type=int,
        default=4 * cpus,
        help="clients for the gateway's throughput: short clips need more than --concurrency to fill the batches",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run" / "bench")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    return parser.parse_args()


Plan = tuple[str, str, Path, dict[float, bytes]]  # model, precision, checkpoint, clips by seconds


def _export_all(args: argparse.Namespace, repository: Path) -> list[Plan]:
    """Every model (and its int8 and bf16 twins where asked) built at real size and exported into
    ``repository``."""
    models = [m for m in args.models.split(",") if m]
    twins = {
        precision: {m for m in names.split(",") if m} & set(models)
        for precision, names in (("int8", args.int8), ("bf16", args.bf16))
    }
    if twins["bf16"] and engines.BF16_CAPABILITY not in engines.cpu_capabilities():
        print(f"bf16: not measured (this CPU has no bf16 instructions): {', '.join(sorted(twins['bf16']))}")
        twins["bf16"] = set()
    only = {float(s) for s in args.clips.split(",") if s}
    plans: list[Plan] = []
    for model in models:
        checkpoint = real_size_models.build(model, args.workdir / "checkpoints" / model)
        lengths = real_size_models.MODELS[model].clip_seconds
        clips = {s: wav(s) for s in lengths if not only or s in only}
        for precision in ("fp32", *(p for p in ("int8", "bf16") if model in twins[p])):
            name = served_name(model, precision)
            print(f"exporting {name} ...", flush=True)
            try:
                export_model(str(checkpoint), repository, ExportOptions(name=name, quantize=precision))
            except ExportError as refusal:  # a reduced precision's gate, or bf16 no faster on this CPU
                if precision == "fp32":
                    raise
                print(f"{precision}: not measured, the export was refused: {refusal}", flush=True)
                continue
            plans.append((model, precision, checkpoint, clips))
    return plans


def _measure_all(
    args: argparse.Namespace, repository: Path, plans: list[Plan], concurrency: tuple[int, int]
) -> list[dict]:
    """Each model and clip in rounds (in process, then served, in turn); each cell the median over rounds."""
    budget = (-(-args.min_requests // args.rounds), args.seconds / args.rounds)  # one round's share
    rows: list[dict] = []
    peaks: list[float] = []  # the CPU's fp32 matmul peak, once a round: the run's best stands for the hardware
    work: dict[tuple[str, float], float] = {}  # GFLOP per clip, by model and clip length (a twin's is fp32's)
    with stack.served(repository, args.workdir / "serve", timeout_s="600") as (triton, gateway):
        for model, precision, checkpoint, clips in plans:
            name = served_name(model, precision)
            local = InProcess.load(checkpoint, repository, name, baseline=precision == "fp32")
            for seconds, data in clips.items():
                if (model, seconds) not in work:
                    work[model, seconds] = roofline.gflop_per_clip(checkpoint, seconds)
                rounds = []
                for number in range(1, args.rounds + 1):
                    print(f"{name} {seconds:g} s, round {number}/{args.rounds}", flush=True)
                    peaks.append(roofline.matmul_peak_gflops(available_cpus()))
                    results = local.measure(data, budget)
                    results |= asyncio.run(served(triton.grpc_url, gateway.url, name, data, concurrency, budget))
                    rounds.append(results)
                results = {key: measure.median([r[key] for r in rounds]) for key in rounds[0]}
                if precision != "fp32":  # the competitor is still the fp32 pipeline; the preprocessing is the same
                    fp32 = next(r for r in rows if r["model"] == model and r["seconds"] == seconds)["results"]
                    results |= {key: fp32[key] for key in ("pipeline", "preprocess")}
                row = {
                    "label": name,
                    "model": model,
                    "precision": precision,
                    "engine": local.served_by,
                    "seconds": seconds,
                }
                rows.append(row | {"results": results, "ratios": ratios(results)})
            del local  # its pipeline's weights, before the next model's
    for row in rows:
        results = row["results"]
        row["roofline"] = roofline.figures(
            work[row["model"], row["seconds"]],
            max(peaks),
            results["pipeline"].clips_per_s,
            results["forward"].clips_per_s,
            best(results, "gateway").clips_per_s,
        )
    return rows


def main() -> None:
    cpus = available_cpus()
    args = _arguments(cpus)
    concurrency = (args.concurrency, args.high_concurrency)
    torch.set_num_threads(cpus)  # the pipeline gets the same CPUs as the served network
    machine = f"{measure.machine()}, onnxruntime {onnxruntime.__version__}"
    print(f"machine: {machine}; torch threads {torch.get_num_threads()}", flush=True)
    repository = args.workdir / "repository"
    started = time.monotonic()
    rows = _measure_all(args, repository, _export_all(args, repository), concurrency)
    print_table(rows, concurrency)
    checks = check_targets(rows)
    print("\ntargets:\n  " + "\n  ".join(checks))
    args.results.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine,
        "concurrency": list(concurrency),
        "rounds": args.rounds,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "targets": checks,
        "rows": [{**row, "results": {k: v.as_dict() for k, v in row["results"].items()}} for row in rows],
    }
    (args.results / "real_size.json").write_text(json.dumps(report, indent=2))
    plot(rows, args.results / "real_size.png", machine)
    print(f"\nwrote {args.results / 'real_size.json'} and real_size.png ({report['minutes']} min)")


if __name__ == "__main__":
    main()
