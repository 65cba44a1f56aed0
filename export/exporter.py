"""Checkpoint -> Triton repository: the steps behind ``python -m export``."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
import transformers

from export import checkpoint as ckpt
from export import cpu_plan, engine_choice, memory_budget, model_configs, onnx_graph, quantize, repository
from export.checkpoint import ExportError
from model_store.location import Location
from triton_steps import batching, contract, engines, long_audio
from triton_steps.features import FeatureExtractor, UnsupportedExtractorError, batch, extractor_from_config
from triton_steps.metadata import ModelMetadata

log = logging.getLogger("export")
AUTO_ENGINE = "auto"  # --engine: the faster exact engine on the exporting machine


def _option(
    default: object,
    help: str,
    flag: str = "",
    parse: Callable[[str], object] | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A field of ``ExportOptions`` that is also a ``python -m export`` flag (``export.__main__`` derives the
    command line from these): its ``help``, and where the field's name and type are not enough, its ``flag``,
    how to ``parse`` the text, or its ``choices``."""
    return field(default=default, metadata={"help": help, "flag": flag, "parse": parse, "choices": choices})


def _number_or_none(value: str) -> float | None:
    return None if value.lower() in ("0", "none") else float(value)


def _count_or_auto(value: str) -> int | None:
    if value == "auto":
        return cpu_plan.AUTO
    count = int(value)
    if count < 1:
        raise ValueError("must be auto or a positive count")
    return count


@dataclass(frozen=True)
class ExportOptions:
    name: str | None = _option(None, "Triton model name (default: the last part of SOURCE)")
    model_id: str | None = _option(
        None, "the id clients send (POST /models/<id>); default: the Hub id, or the name for a folder"
    )
    revision: str | None = _option(None, "Hub revision (branch, tag or commit)")
    token: str | None = _option(None, "Hub token (default: env HF_TOKEN)")
    max_batch_size: int = _option(8, "the batcher's largest batch")
    max_seconds: float | None = _option(
        120.0, "longest audio accepted, in seconds; 0 for no limit", parse=_number_or_none
    )
    memory_budget_gib: float | None = _option(
        4.0,
        "GiB of attention memory per request: a waveform model's --max-seconds is lowered to fit; 0 for none",
        flag="--memory-budget",
        parse=_number_or_none,
    )
    tolerance: float = _option(1e-4, "max |ONNX - torch| of the logits, relative to their scale")
    feature_tolerance: float = _option(1e-4, "max |ours - transformers| features")
    preprocess_instances: int = _option(2, "CPU instances of the preprocess step")
    cpu_threads: int | None = _option(
        cpu_plan.AUTO,
        "the CPU engine's threads per network instance; auto: 1 for a model under 10M parameters, else "
        "every CPU available here (export on the serving machine, or give its count)",
        parse=_count_or_auto,
    )
    instances: int | None = _option(
        cpu_plan.AUTO,
        "network instances (per GPU on a GPU machine); auto: 1 (--single-step: as many as this machine's CPUs hold "
        "at --cpu-threads each)",
        parse=_count_or_auto,
    )
    queue_delay_ms: float = _option(
        0.0,
        "how long Triton may hold a request at the network step for others to join its batch: more "
        "throughput under concurrent load, that much more latency when requests come one at a time",
    )
    batched_example_limit: int = _option(
        cpu_plan.BATCHED_EXAMPLE_LIMIT,
        "on the CPU (local mode, the slim CPU image), requests whose network input "
        "holds more elements than this run one at a time instead of as a batch, which costs more per clip past a "
        "few seconds of audio; 0: batch every size (3 s at 16 kHz)",
    )
    quantize: str = _option(
        "fp32",
        "int8: dynamic int8 MatMul/Gemm on onnxruntime, or NNCF's static int8 on OpenVINO (--engine; auto: "
        "the faster of those that pass the gate); bf16: OpenVINO computing in bf16, on a CPU with bf16 "
        "instructions (AVX512-BF16 or AMX) only, and refused where it measures no faster than fp32. Both "
        "faster on CPU; their scores are not transformers' within 1e-4 but must pass the gate below against the "
        "fp32 model",
        choices=quantize.PRECISIONS,
    )
    quantized_tolerance: float = _option(
        0.05, "int8, bf16: largest |score - fp32 score| allowed on the gate's 48 clips"
    )
    quantized_min_agreement: float = _option(
        0.95, "int8, bf16: smallest fraction of the gate's clips whose top label must equal fp32's"
    )
    engine: str = _option(
        AUTO_ENGINE,
        "the exact CPU engine of the network step (local mode, the slim CPU image; Triton's native backend on "
        "the NGC image runs onnxruntime): auto measures onnxruntime and OpenVINO (f32 forced) here and keeps "
        "the faster of those that pass the parity check (with --quantize int8: each engine's int8 network, the "
        "faster of those that pass the gate)",
        choices=(AUTO_ENGINE, *engines.ENGINES),
    )
    tensorrt: bool = _option(False, "ask Triton's onnxruntime backend to run the network with TensorRT on GPU")
    single_step: bool = _option(
        False,
        "CPU serving only (local mode, the slim CPU image): one Python step that decodes, extracts the features, "
        "runs the network on its engine and ranks, instead of the three-step ensemble; the same scores, about 2 ms "
        "less per request. Not for the NGC image, where the network runs on Triton's own backends (GPU)",
    )
    long_audio: str = _option(
        "none",
        "none: as transformers (the model's own padding / truncation); chunk: classify recordings up to "
        "--max-seconds by sliding windows, scores aggregated (mean; max for sigmoid)",
        choices=long_audio.MODES,
    )
    chunk_seconds: float | None = _option(
        None, "chunk window (default: the model's own: AST 10.24 s, Whisper 30 s, else 10 s)"
    )
    chunk_hop_seconds: float | None = _option(None, "chunk hop between windows (default: the window)")
    on_demand: bool = False  # exported by the loader for a request (recorded in the metadata); not a flag

    def __post_init__(self) -> None:
        """Every check that needs no checkpoint, so that a bad option fails before minutes of export."""
        choices = {
            "--quantize": (self.quantize, quantize.PRECISIONS),
            "--long-audio": (self.long_audio, long_audio.MODES),
            "--engine": (self.engine, (AUTO_ENGINE, *engines.ENGINES)),
        }
        problems = [
            f"{flag} must be one of {', '.join(allowed)}; got {value!r}"
            for flag, (value, allowed) in choices.items()
            if value not in allowed
        ]
        problems += self._conflicts()
        if self.long_audio == "chunk" and self.max_seconds is None:
            problems.append("--long-audio chunk needs --max-seconds: the longest recording bounds the work")
        positive = {
            "--max-batch-size": self.max_batch_size,
            "--preprocess-instances": self.preprocess_instances,
            "--tolerance": self.tolerance,
            "--feature-tolerance": self.feature_tolerance,
            "--max-seconds": self.max_seconds,
            "--memory-budget": self.memory_budget_gib,
            "--chunk-seconds": self.chunk_seconds,
            "--chunk-hop-seconds": self.chunk_hop_seconds,
            "--quantized-tolerance": self.quantized_tolerance,
        }
        problems += [
            f"{flag} must be positive; got {value}"
            for flag, value in positive.items()
            if value is not None and value <= 0
        ]
        if self.queue_delay_ms < 0:
            problems.append(f"--queue-delay-ms must be 0 or more; got {self.queue_delay_ms}")
        if self.batched_example_limit < 0:
            problems.append(f"--batched-example-limit must be 0 or more; got {self.batched_example_limit}")
        if not 0 <= self.quantized_min_agreement <= 1:
            problems.append(f"--quantized-min-agreement must be in [0, 1]; got {self.quantized_min_agreement}")
        if problems:
            raise ExportError("; ".join(problems))

    def _conflicts(self) -> list[str]:
        """Options that cannot go together."""
        problems = []
        if self.single_step and self.tensorrt:
            problems.append("--single-step runs the network in a Python step on the CPU; --tensorrt needs the ensemble")
        if self.quantize != quantize.FP32 and self.tensorrt:
            problems.append(f"--quantize {self.quantize} is for CPU serving; with --tensorrt export in fp32")
        if self.quantize == quantize.BF16:
            problems += _bf16_problems(self.engine)
        return problems


def _bf16_problems(engine: str) -> list[str]:
    """Why ``--quantize bf16`` cannot export here: it runs on OpenVINO, and its gate needs this CPU's bf16."""
    problems = []
    if engine == engines.ONNXRUNTIME:
        problems.append("--quantize bf16 runs on OpenVINO; --engine onnxruntime is for fp32 and int8")
    try:
        engines.require_bf16(engines.cpu_capabilities())
    except engines.UnsupportedPrecision as error:
        problems.append(f"--quantize bf16: {error}; export in fp32 or int8 here")
    return problems


@dataclass(frozen=True)
class ExportResult:
    metadata: ModelMetadata
    parity: onnx_graph.ParityReport
    seconds: float


def _shim(module: str) -> str:
    return (
        f'"""Generated by `python -m export`: this step is `{module}` of the installed triton_steps package."""\n\n'
        f"from {module} import TritonPythonModel  # noqa: F401\n"
    )


def _chunking(options: ExportOptions, extractor: FeatureExtractor, shortest: int) -> long_audio.Chunking | None:
    if options.long_audio == "none":
        return None
    rate = extractor.sampling_rate
    window = round(options.chunk_seconds * rate) if options.chunk_seconds else long_audio.default_window(extractor)
    hop = round(options.chunk_hop_seconds * rate) if options.chunk_hop_seconds else window
    if window < shortest or not 0 < hop <= window:
        raise ExportError(
            f"chunk window {window / rate:g} s / hop {hop / rate:g} s: the window must be at least "
            f"{shortest / rate:g} s (the shortest input) and the hop in (0, window]"
        )
    return long_audio.Chunking(window, hop)


def _within_budget(
    options: ExportOptions,
    checkpoint: ckpt.Checkpoint,
    extractor: FeatureExtractor,
    chunking: long_audio.Chunking | None,
) -> float | None:
    """``max_seconds``, lowered to what the memory budget allows a waveform model (in chunk mode the window
    bounds the memory instead, and must fit the budget)."""
    if not options.memory_budget_gib:
        return options.max_seconds
    longest = memory_budget.longest_seconds(
        checkpoint.model.config, extractor, options.memory_budget_gib * memory_budget.GIB
    )
    if longest is None:
        return options.max_seconds
    if chunking is not None:
        if chunking.window_samples / extractor.sampling_rate > longest:
            raise ExportError(
                f"a {chunking.window_samples / extractor.sampling_rate:g} s window needs more than the memory budget "
                f"of {options.memory_budget_gib:g} GiB allows ({longest:g} s): lower --chunk-seconds"
            )
        return options.max_seconds
    if options.max_seconds is None or longest < options.max_seconds:
        budget = options.memory_budget_gib
        log.info("    max_seconds %g: the longest clip within --memory-budget %g GiB", longest, budget)
        return longest
    return options.max_seconds


@dataclass(frozen=True)
class _Plan:
    """What step 1 (loading) decides: the checkpoint, its names, our extractor and the length limits."""

    checkpoint: ckpt.Checkpoint
    names: contract.StepNames
    extractor: FeatureExtractor
    shortest: int  # samples
    chunking: long_audio.Chunking | None
    max_seconds: float | None


@dataclass(frozen=True)
class _Network:
    """What steps 2 and 3 produce: the served ONNX file, its inputs, and what the checks found."""

    specs: list[contract.TensorSpec]
    onnx_path: Path
    parity: onnx_graph.ParityReport
    quantization: dict | None
    engine: str  # the network step's engine (triton_steps.engines)
    engine_ms: dict[str, float]  # auto: each exact engine's time per clip, as measured here


def _plan(source: str, options: ExportOptions) -> _Plan:
    checkpoint = ckpt.load(source, options.revision, options.token)
    try:
        extractor = extractor_from_config(checkpoint.extractor_config)
    except UnsupportedExtractorError as error:
        raise ExportError(str(error)) from error
    shortest = onnx_graph.min_samples(checkpoint, extractor)
    extractor = extractor_from_config(checkpoint.extractor_config, min_length=shortest)
    chunking = _chunking(options, extractor, shortest)
    max_seconds = _within_budget(options, checkpoint, extractor, chunking)
    log.info(f"    {checkpoint.architecture}, {len(checkpoint.labels)} labels, {type(checkpoint.extractor).__name__}")
    names = contract.StepNames(options.name or ckpt.default_name(source))
    return _Plan(checkpoint, names, extractor, shortest, chunking, max_seconds)


def _network_threads(plan: _Plan, options: ExportOptions) -> int:
    parameters = sum(p.numel() for p in plan.checkpoint.model.parameters())
    return cpu_plan.network_threads(options.cpu_threads, parameters)


def _candidate_engines(options: ExportOptions) -> tuple[str, ...]:
    """The engines the network may run on: bf16 runs on OpenVINO only; fp32 and int8 (each engine its own int8
    network) on the one asked for, or with auto on every engine."""
    if options.quantize == quantize.BF16:
        return (engines.OPENVINO,)
    return engines.ENGINES if options.engine == AUTO_ENGINE else (options.engine,)


def _fastest(plan: _Plan, options: ExportOptions, networks: dict[str, Path]) -> tuple[str, dict[str, float]]:
    """The engine whose network (``networks``: engine -> ONNX file) runs fastest here, and (when there was a
    choice) each one's measured time per clip."""
    if len(networks) == 1:
        return next(iter(networks)), {}
    candidates = {name: engine_choice.Candidate(name, path) for name, path in networks.items()}
    workloads = _timed_workloads(plan, options)
    times = engine_choice.fastest(candidates, workloads, _network_threads(plan, options))
    chosen = min(times, key=times.__getitem__)
    shown = ", ".join(f"{name} {ms:.1f} ms" for name, ms in times.items())
    log.info(f"    engine: {chosen} ({shown} per clip, {_described(workloads)})")
    return chosen, times


def _bf16_speedup(plan: _Plan, options: ExportOptions, onnx_path: Path) -> float:
    """How many times faster OpenVINO computes the network in bf16 than the faster exact engine in fp32, here;
    ``ExportError`` unless it is faster: bf16 gives up exactness for speed alone, and a CPU can list bf16
    instructions and still compute slower in bf16 (an Intel Xeon with AVX512-BF16 but no AMX: 1.5x slower)."""
    candidates = {name: engine_choice.Candidate(name, onnx_path) for name in engines.ENGINES}
    candidates[engines.BF16] = engine_choice.Candidate(engines.OPENVINO, onnx_path, engines.BF16)
    workloads = _timed_workloads(plan, options)
    fp32 = engine_choice.fastest(candidates, workloads, _network_threads(plan, options))
    bf16 = fp32.pop(engines.BF16)  # what is left: each exact engine's fp32 time
    exact = min(fp32, key=fp32.__getitem__)
    timed = f"OpenVINO bf16 {bf16:.1f} ms, {exact} fp32 {fp32[exact]:.1f} ms per clip, {_described(workloads)}"
    log.info(f"    {timed}")
    if bf16 >= fp32[exact]:
        raise ExportError(
            f"--quantize bf16 is no faster than fp32 on this CPU ({timed}): export in fp32, which is exact, or int8"
        )
    return round(fp32[exact] / bf16, 2)


def _exact_engine(
    plan: _Plan, options: ExportOptions, onnx_path: Path, parity: onnx_graph.ParityReport
) -> tuple[str, dict[str, float]]:
    """fp32: the fastest engine of those whose logits matched torch's on ``onnx_path``."""
    exact = [name for name in _candidate_engines(options) if parity.engine_diffs[name] <= options.tolerance]
    if options.engine not in (AUTO_ENGINE, *exact):
        raise ExportError(
            f"{options.engine}'s logits differ from torch by {parity.engine_diffs[options.engine]:.2e} of their "
            f"scale (> {options.tolerance:g}): serve it with --engine onnxruntime (or auto)"
        )
    return _fastest(plan, options, {name: onnx_path for name in exact})


def _reduced_network(
    plan: _Plan, options: ExportOptions, onnx_path: Path, workdir: Path
) -> tuple[Path, dict, str, dict[str, float]]:
    """int8, bf16: each candidate engine's network made and gated against the fp32 torch model; the served file,
    the gate's report, and the engine of the fastest that passed (with each one's time when there was a choice).
    ``ExportError`` when none passes."""
    passed: dict[str, tuple[Path, dict]] = {}
    refusals = []
    measured = {"speedup_vs_fp32": _bf16_speedup(plan, options, onnx_path)} if options.quantize == quantize.BF16 else {}
    gate = quantize.Gate.of(plan.checkpoint, plan.extractor, plan.shortest)
    for engine in _candidate_engines(options):
        if options.quantize == quantize.BF16:
            log.info("    checking OpenVINO in bf16 against the fp32 torch model")
            served, method = onnx_path, quantize.BF16_METHOD
            network = engines.load(engine, served, precision=engines.BF16)
        else:
            served, method = workdir / f"int8-{engine}-{contract.NETWORK_FILE}", quantize.INT8_METHODS[engine]
            log.info(f"    {method}, then checking it against the fp32 torch model")
            quantize.quantize_int8(engine, onnx_path, served, plan.extractor, plan.shortest)
            network = engines.load(engine, served)
        try:
            report = gate.check(
                network, f"{options.quantize} ({engine})", options.quantized_tolerance, options.quantized_min_agreement
            )
        except ExportError as refusal:
            refusals.append(str(refusal))
            continue
        passed[engine] = (served, report.as_metadata(method) | measured)
    if not passed:
        raise ExportError("; ".join(refusals))
    chosen, times = _fastest(plan, options, {engine: served for engine, (served, _) in passed.items()})
    return *passed[chosen], chosen, times


def _timed_workloads(plan: _Plan, options: ExportOptions) -> list[engine_choice.Workload]:
    """What engines are timed on, as the network step will be given it: one clip of ``_timed_samples`` alone
    and, unless such clips run alone (``--batched-example-limit``), a full batch of short clips (1 s, or the
    model's window if shorter)."""
    rng = np.random.default_rng(2)
    rate = plan.extractor.sampling_rate

    def workload(samples: int, clips: int) -> engine_choice.Workload:
        waveforms = [rng.standard_normal(samples).astype(np.float32) * 0.1 for _ in range(clips)]
        label = f"{clips} clip{'s' if clips > 1 else ''} of {samples / rate:g} s"
        return engine_choice.Workload(batch([plan.extractor(w) for w in waveforms]), clips, label)

    window = _timed_samples(plan)
    workloads = [workload(window, 1)]
    short = max(plan.shortest, min(window, rate))
    example = tuple(value.shape[1:] for value in workload(short, 1).feed.values())
    if options.max_batch_size > 1 and batching.batched(example, options.batched_example_limit):
        workloads.append(workload(short, options.max_batch_size))
    return workloads


def _described(workloads: list[engine_choice.Workload]) -> str:
    labels = [w.label for w in workloads]
    return labels[0] if len(labels) == 1 else f"the geometric mean of {' and '.join(labels)}"


def _timed_samples(plan: _Plan) -> int:
    """A typical request's length: the model's own window (what its feature extractor keeps of a clip), within
    the longest clip the model accepts (the memory budget may have shortened it)."""
    window = long_audio.default_window(plan.extractor)
    if plan.max_seconds is None:
        return window
    return max(plan.shortest, min(window, int(plan.max_seconds * plan.extractor.sampling_rate)))


def _export_network(plan: _Plan, options: ExportOptions, workdir: Path, step: Callable[[int, str], None]) -> _Network:
    onnx_path = workdir / contract.NETWORK_FILE
    step(2, "exporting the network to ONNX")
    specs = onnx_graph.export(plan.checkpoint, plan.extractor, onnx_path)
    others = tuple(name for name in _candidate_engines(options) if name != engines.ONNXRUNTIME)
    step(
        3, f"checking {', '.join((engines.ONNXRUNTIME, *others))} against torch, and the features against transformers"
    )
    parity = onnx_graph.verify(
        plan.checkpoint,
        plan.extractor,
        onnx_path,
        specs,
        plan.shortest,
        options.tolerance,
        options.feature_tolerance,
        others,
    )
    if options.quantize == quantize.FP32:
        return _Network(specs, onnx_path, parity, None, *_exact_engine(plan, options, onnx_path, parity))
    served, quantization, engine, times = _reduced_network(plan, options, onnx_path, workdir)
    return _Network(specs, served, parity, quantization, engine, times)


def _metadata(plan: _Plan, options: ExportOptions, network: _Network) -> ModelMetadata:
    checkpoint, extractor, chunking = plan.checkpoint, plan.extractor, plan.chunking
    name = plan.names.ensemble
    return ModelMetadata(
        name=name,
        model_id=options.model_id or checkpoint.model_id or name,
        source=checkpoint.source,
        architecture=checkpoint.architecture,
        model_type=checkpoint.model_type,
        feature_extractor=type(checkpoint.extractor).__name__,
        sampling_rate=extractor.sampling_rate,
        labels=checkpoint.labels,
        function_to_apply=checkpoint.function_to_apply,
        max_batch_size=options.max_batch_size,
        min_samples=plan.shortest,
        max_seconds=plan.max_seconds,
        long_audio=None
        if chunking is None
        else {
            "mode": "chunk",
            "window_seconds": chunking.window_samples / extractor.sampling_rate,
            "hop_seconds": chunking.hop_samples / extractor.sampling_rate,
            "aggregate": "max of the windows' scores for sigmoid, their mean otherwise",
            "exact": "equals transformers for clips up to one window; longer clips are aggregated windows",
        },
        window_seconds=long_audio.default_window(extractor) / extractor.sampling_rate,
        versions={
            "transformers": transformers.__version__,
            "torch": torch.__version__.split("+")[0],
            "onnxruntime": onnxruntime.__version__,
            "onnx_opset": str(onnx_graph.OPSET),
            **({"openvino": _openvino_version()} if network.engine == engines.OPENVINO else {}),
        },
        precision=options.quantize,
        quantization=network.quantization,
        engine=network.engine,
        engine_ms=network.engine_ms,
        single_step=options.single_step,
        on_demand=options.on_demand,
    )


def _openvino_version() -> str:
    import openvino  # only when it runs the network

    return openvino.__version__.split("-")[0]


def _model_dirs(
    plan: _Plan, options: ExportOptions, network: _Network, metadata: ModelMetadata
) -> dict[str, repository.ModelDir]:
    """The four model directories, the ensemble last (the order they are written in); with ``--single-step``
    the one model that takes their place."""
    checkpoint, names, chunking, specs = plan.checkpoint, plan.names, plan.chunking, network.specs
    parameters = sum(p.numel() for p in checkpoint.model.parameters())
    threads = _network_threads(plan, options)
    instances = (
        cpu_plan.single_step_instances(options.instances, threads)
        if options.single_step
        else cpu_plan.network_instances(options.instances)
    )
    log.info(
        "    %s parameters: %d network instance(s), %d %s thread(s)",
        f"{parameters / 1e6:.1f}M" if parameters >= 100_000 else f"{parameters:,}",
        instances,
        threads,
        network.engine,
    )
    mbs = options.max_batch_size
    preprocess_params = {
        contract.MIN_SAMPLES: str(plan.shortest),
        contract.MAX_SECONDS: "" if plan.max_seconds is None else str(plan.max_seconds),
    }
    num_labels = len(checkpoint.labels)
    if chunking is not None:
        preprocess_params |= {
            contract.LONG_AUDIO: "chunk",
            contract.WINDOW_SAMPLES: str(chunking.window_samples),
            contract.HOP_SAMPLES: str(chunking.hop_samples),
        }
    precision = engines.compute_precision(options.quantize)
    extractor_file = {contract.EXTRACTOR_FILE: json.dumps(checkpoint.extractor_config, indent=2, sort_keys=True)}
    labels_file = {contract.LABELS_FILE: json.dumps(checkpoint.labels, indent=2, ensure_ascii=False)}
    if options.single_step:
        parameters = {
            **preprocess_params,
            **model_configs.network_parameters(threads, network.engine, precision),
            contract.FUNCTION_TO_APPLY_DEFAULT: checkpoint.function_to_apply,
            contract.NETWORK_INPUTS: model_configs.network_inputs_json(specs),
            contract.BATCHED_EXAMPLE_LIMIT: str(options.batched_example_limit),
        }
        config = model_configs.single_step_config(names, mbs, instances, parameters, metadata.to_json(None))
        return {
            names.ensemble: repository.ModelDir(
                config,
                files={**extractor_file, **labels_file, contract.METADATA_FILE: metadata.to_json()},
                version_files={
                    contract.PYTHON_MODEL_FILE: _shim("triton_steps.single_step_model"),
                    contract.NETWORK_FILE: network.onnx_path,
                },
            )
        }
    chunk_labels = None if chunking is None else num_labels
    if chunking is not None:  # the preprocess step calls the network step itself
        preprocess_params |= {
            contract.NETWORK: names.network,
            contract.NETWORK_INPUTS: model_configs.network_inputs_json(specs),
        }
    network_config = model_configs.network_config(
        names,
        mbs,
        specs,
        num_labels,
        options.tensorrt,
        threads,
        instances,
        queue_delay_ms=options.queue_delay_ms,
        batched_example_limit=options.batched_example_limit,
        engine=network.engine,
        precision=precision,
    )
    return {
        names.preprocess: repository.ModelDir(
            model_configs.preprocess_config(
                names, mbs, specs, options.preprocess_instances, preprocess_params, chunk_labels
            ),
            files=extractor_file,
            version_files={contract.PYTHON_MODEL_FILE: _shim("triton_steps.preprocess_model")},
        ),
        names.network: repository.ModelDir(
            network_config,
            version_files={contract.NETWORK_FILE: network.onnx_path},
        ),
        names.postprocess: repository.ModelDir(
            model_configs.postprocess_config(
                names, mbs, num_labels, checkpoint.function_to_apply, chunked=chunking is not None
            ),
            files=labels_file,
            version_files={contract.PYTHON_MODEL_FILE: _shim("triton_steps.postprocess_model")},
        ),
        names.ensemble: repository.ModelDir(
            model_configs.ensemble_config(
                names, mbs, specs, metadata.to_json(indent=None), chunked=chunking is not None
            ),
            files={contract.METADATA_FILE: metadata.to_json()},
            # Triton needs the ensemble's (empty) version folder; git keeps no empty folder.
            version_files={".gitkeep": ""},
        ),
    }


def export_model(
    source: str,
    repository_dir: Path | Location,
    options: ExportOptions = ExportOptions(),
) -> ExportResult:
    """Export ``source`` into ``repository_dir`` (a folder or S3) as an ensemble NAME and its three steps (or,
    ``single_step``, one model NAME): 1 load and plan, 2 export the network to ONNX, 3 check it (and quantize),
    4 write the models.
    Progress goes to the ``export`` logger (``python -m export`` shows it on stderr)."""
    start = time.monotonic()
    target = repository_dir if isinstance(repository_dir, Location) else Location(path=Path(repository_dir))

    def step(number: int, message: str) -> None:
        log.info("[%d/4 %6.1fs] %s", number, time.monotonic() - start, message)

    step(1, f"loading {source}")
    plan = _plan(source, options)
    workdir = Path(tempfile.mkdtemp(prefix=".export-onnx-"))
    try:
        network = _export_network(plan, options, workdir, step)
        metadata = _metadata(plan, options, network)
        models = _model_dirs(plan, options, network, metadata)
        step(4, f"writing {', '.join(models)} into {target}")
        revision = repository.write(target, models, options.on_demand)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - start
    inputs = ", ".join(spec.name for spec in (contract.AUDIO, *contract.OPTIONAL_INPUTS))
    served = "model" if options.single_step else "ensemble"
    log.info(f"done in {seconds:.1f}s: {served} {plan.names.ensemble!r} (inputs {inputs}), revision {revision}")
    return ExportResult(metadata, network.parity, seconds)
