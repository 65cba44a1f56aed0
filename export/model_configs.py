"""The config.pbtxt of each model in an exported repository, built as Triton ``ModelConfig`` protobufs.

Building the messages (rather than formatting text) means every config we write is one Triton can parse.
The names they use (the ensemble contract) come from ``triton_steps.contract``.
"""

from __future__ import annotations

import json

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_steps.contract import (
    AUDIO,
    BATCHED_EXAMPLE_LIMIT,
    ENGINE,
    FUNCTION_TO_APPLY_DEFAULT,
    INTER_OP_THREADS,
    INTRA_OP_THREADS,
    LABELS,
    LOGITS,
    METADATA_PARAMETER,
    OPTIONAL_INPUTS,
    PRECISION,
    SCORES,
    StepNames,
    TensorSpec,
    logits_spec,
)


def _input(spec: TensorSpec, optional: bool = False) -> mc.ModelInput:
    return mc.ModelInput(
        name=spec.name, data_type=mc.DataType.Value(spec.data_type), dims=list(spec.dims), optional=optional
    )


def _output(spec: TensorSpec) -> mc.ModelOutput:
    return mc.ModelOutput(name=spec.name, data_type=mc.DataType.Value(spec.data_type), dims=list(spec.dims))


def _set_parameters(config: mc.ModelConfig, parameters: dict[str, str]) -> None:
    for key, value in parameters.items():
        config.parameters[key].string_value = value


def _cpu_instances(count: int) -> list[mc.ModelInstanceGroup]:
    return [mc.ModelInstanceGroup(count=count, kind=mc.ModelInstanceGroup.KIND_CPU)]


def preprocess_config(
    names: StepNames,
    max_batch_size: int,
    features: list[TensorSpec],
    instances: int,
    parameters: dict[str, str],
    chunk_labels: int | None = None,
) -> mc.ModelConfig:
    """Python step: AUDIO (file bytes) -> the network's inputs; in chunk mode (``chunk_labels``: the label
    count) -> every window's logits, from the network step called per batch of windows."""
    outputs = [logits_spec(chunk_labels, windows=True)] if chunk_labels else features
    config = mc.ModelConfig(
        name=names.preprocess,
        backend="python",
        max_batch_size=max_batch_size,
        input=[_input(AUDIO)],
        output=[_output(f) for f in outputs],
        dynamic_batching=mc.ModelDynamicBatching(),
        instance_group=_cpu_instances(instances),
    )
    _set_parameters(config, parameters)
    return config


def network_config(
    names: StepNames,
    max_batch_size: int,
    features: list[TensorSpec],
    num_labels: int,
    tensorrt: bool,
    threads: int,
    instances: int = 1,
    queue_delay_ms: float = 0.0,
    batched_example_limit: int = 0,
    engine: str = "onnxruntime",
    precision: str = "fp32",
) -> mc.ModelConfig:
    """The ONNX network on Triton's native onnxruntime backend (GPU when there is one, else CPU); in local mode
    and the slim CPU image on ``engine`` computing in ``precision`` (``triton_steps.engines``), which the native
    backend ignores.

    Batches are only ever formed from same-shape requests: variable-length inputs are not padded, so
    batching never changes a score. ``queue_delay_ms``: how long Triton's batcher may hold a request for more
    to join its batch (0: it runs what is queued as soon as an instance is free). ``batched_example_limit``:
    requests whose input holds more elements run one at a time (0: no limit); only the local onnxruntime step
    (``triton_steps.onnx_model``, always on the CPU) reads it, Triton's native backend ignores it.
    """
    config = mc.ModelConfig(
        name=names.network,
        platform="onnxruntime_onnx",
        max_batch_size=max_batch_size,
        input=[_input(f) for f in features],
        output=[_output(logits_spec(num_labels))],
        dynamic_batching=mc.ModelDynamicBatching(max_queue_delay_microseconds=round(queue_delay_ms * 1000)),
        # KIND_AUTO: ``instances`` per GPU where there are GPUs, else on the CPU (export.cpu_plan says why one
        # instance by default: Triton's own CPU default of two, with onnxruntime's threads, oversubscribes).
        instance_group=[mc.ModelInstanceGroup(count=instances)],
    )
    if tensorrt:
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add()
        accelerator.name = "tensorrt"
        accelerator.parameters["precision_mode"] = "FP32"
    _set_parameters(
        config, {**network_parameters(threads, engine, precision), BATCHED_EXAMPLE_LIMIT: str(batched_example_limit)}
    )
    return config


def network_parameters(threads: int, engine: str, precision: str) -> dict[str, str]:
    """How the network runs on the CPU: its engine's threads, the engine and the precision it computes in."""
    return {INTRA_OP_THREADS: str(threads), INTER_OP_THREADS: "1", ENGINE: engine, PRECISION: precision}


def postprocess_config(
    names: StepNames, max_batch_size: int, num_labels: int, function_to_apply: str, chunked: bool = False
) -> mc.ModelConfig:
    """Python step: logits (+ optional TOP_K, FUNCTION_TO_APPLY) -> LABELS, SCORES (chunked: windows aggregated)."""
    config = mc.ModelConfig(
        name=names.postprocess,
        backend="python",
        max_batch_size=max_batch_size,
        input=[_input(logits_spec(num_labels, chunked))] + [_input(spec, optional=True) for spec in OPTIONAL_INPUTS],
        output=_public_outputs(),
        dynamic_batching=mc.ModelDynamicBatching(),
        instance_group=_cpu_instances(1),
    )
    _set_parameters(config, {FUNCTION_TO_APPLY_DEFAULT: function_to_apply})
    return config


def ensemble_config(
    names: StepNames, max_batch_size: int, features: list[TensorSpec], metadata_json: str, chunked: bool = False
) -> mc.ModelConfig:
    """The public entry point: AUDIO [+ TOP_K, FUNCTION_TO_APPLY] -> LABELS, SCORES.

    Chunked, the preprocess step calls the network itself (one call per batch of windows) and hands every
    window's logits to the postprocess step."""
    identity = {f.name: f.name for f in features}
    network = [
        mc.ModelEnsembling.Step(
            model_name=names.network, model_version=-1, input_map=identity, output_map={LOGITS: LOGITS}
        )
    ]
    steps = [
        mc.ModelEnsembling.Step(
            model_name=names.preprocess,
            model_version=-1,
            input_map={AUDIO.name: AUDIO.name},
            output_map={LOGITS: LOGITS} if chunked else identity,
        ),
        *([] if chunked else network),
        mc.ModelEnsembling.Step(
            model_name=names.postprocess,
            model_version=-1,
            input_map={LOGITS: LOGITS, **{s.name: s.name for s in OPTIONAL_INPUTS}},
            output_map={LABELS.name: LABELS.name, SCORES.name: SCORES.name},
        ),
    ]
    config = mc.ModelConfig(
        name=names.ensemble,
        platform="ensemble",
        max_batch_size=max_batch_size,
        input=_public_inputs(),
        output=_public_outputs(),
        ensemble_scheduling=mc.ModelEnsembling(step=steps),
    )
    _set_parameters(config, {METADATA_PARAMETER: metadata_json})
    return config


def single_step_config(
    names: StepNames, max_batch_size: int, instances: int, parameters: dict[str, str], metadata_json: str
) -> mc.ModelConfig:
    """A ``--single-step`` export's only model, in place of the ensemble and its three steps: the same inputs,
    outputs and metadata, computed in one Python step on the CPU (``triton_steps.single_step_model``) from the
    preprocess, network and postprocess steps' ``parameters`` together."""
    config = mc.ModelConfig(
        name=names.ensemble,
        backend="python",
        max_batch_size=max_batch_size,
        input=_public_inputs(),
        output=_public_outputs(),
        dynamic_batching=mc.ModelDynamicBatching(),
        instance_group=_cpu_instances(instances),
    )
    _set_parameters(config, {**parameters, METADATA_PARAMETER: metadata_json})
    return config


def network_inputs_json(features: list[TensorSpec]) -> str:
    """``contract.NETWORK_INPUTS``: the network's inputs and their types, for a step that feeds it itself."""
    return json.dumps({spec.name: spec.data_type for spec in features})


def _public_inputs() -> list[mc.ModelInput]:
    return [_input(AUDIO)] + [_input(spec, optional=True) for spec in OPTIONAL_INPUTS]


def _public_outputs() -> list[mc.ModelOutput]:
    return [_output(LABELS), _output(SCORES)]


def to_text(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def parse(text: str) -> mc.ModelConfig:
    """Parse config.pbtxt text; raises ``text_format.ParseError`` on anything Triton would reject."""
    return text_format.Parse(text, mc.ModelConfig())
