"""What the exporter writes: configs Triton can parse, the ensemble contract, metadata, the step files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from export import model_configs
from triton_steps.contract import EXTRACTOR_FILE, LABELS_FILE, METADATA_FILE, METADATA_PARAMETER
from triton_steps.metadata import ModelMetadata

TYPE = mc.DataType.Name


def _config(repository: Path, name: str) -> mc.ModelConfig:
    return model_configs.parse((repository / name / "config.pbtxt").read_text())


def test_every_config_parses_as_a_triton_model_config(repository: Path) -> None:
    configs = sorted(repository.glob("*/config.pbtxt"))
    assert len(configs) >= 4 * 15
    for path in configs:
        config = model_configs.parse(path.read_text())
        assert config.name == path.parent.name
        assert config.max_batch_size > 0


@pytest.mark.parametrize("name", ["ast", "wav2vec2_bert", "whisper", "sew_d"])
def test_ensemble_contract(repository: Path, name: str) -> None:
    config = _config(repository, name)
    assert config.platform == "ensemble"
    inputs = {i.name: (TYPE(i.data_type), list(i.dims), i.optional) for i in config.input}
    assert inputs == {
        "AUDIO": ("TYPE_STRING", [1], False),
        "TOP_K": ("TYPE_INT32", [1], True),
        "FUNCTION_TO_APPLY": ("TYPE_STRING", [1], True),
    }
    outputs = {o.name: (TYPE(o.data_type), list(o.dims)) for o in config.output}
    assert outputs == {"LABELS": ("TYPE_STRING", [-1]), "SCORES": ("TYPE_FP32", [-1])}
    steps = [step.model_name for step in config.ensemble_scheduling.step]
    assert steps == [f"{name}_preprocess", f"{name}_onnx", f"{name}_postprocess"]


@pytest.mark.parametrize("name", ["ast", "hubert", "whisper"])
def test_steps(repository: Path, name: str) -> None:
    pre, net, post = (_config(repository, f"{name}_{step}") for step in ("preprocess", "onnx", "postprocess"))
    assert pre.backend == post.backend == "python"
    assert net.platform == "onnxruntime_onnx"
    for config in (pre, net, post):
        assert config.HasField("dynamic_batching")
    assert [o.name for o in pre.output] == [i.name for i in net.input]
    assert (repository / f"{name}_onnx" / "1" / "model.onnx").stat().st_size > 0
    assert "triton_steps.preprocess_model" in (repository / f"{name}_preprocess" / "1" / "model.py").read_text()
    assert "triton_steps.postprocess_model" in (repository / f"{name}_postprocess" / "1" / "model.py").read_text()
    assert json.loads((repository / f"{name}_preprocess" / EXTRACTOR_FILE).read_text())["feature_extractor_type"]


def test_waveform_inputs_have_a_variable_time_axis(repository: Path) -> None:
    net = _config(repository, "wav2vec2_layer_norm_onnx")
    assert {i.name: list(i.dims) for i in net.input} == {"input_values": [-1], "attention_mask": [-1]}
    assert [list(i.dims) for i in _config(repository, "ast_onnx").input] == [[1024, 128]]
    assert [list(i.dims) for i in _config(repository, "whisper_onnx").input] == [[80, 3000]]


def test_metadata_file_and_ensemble_parameter_agree(repository: Path) -> None:
    from_file = ModelMetadata.from_json((repository / "hubert" / METADATA_FILE).read_text())
    from_config = ModelMetadata.from_json(_config(repository, "hubert").parameters[METADATA_PARAMETER].string_value)
    assert from_file == from_config
    assert from_file.labels == json.loads((repository / "hubert_postprocess" / LABELS_FILE).read_text())
    assert from_file.sampling_rate == 16000 and from_file.architecture == "HubertForSequenceClassification"
    assert from_file.min_samples > 0 and from_file.max_seconds == 120.0


def test_ensemble_version_folder_survives_git(repository: Path) -> None:
    """Triton refuses an ensemble without a version folder, and git keeps no empty folder."""
    assert (repository / "hubert" / "1" / ".gitkeep").is_file()
