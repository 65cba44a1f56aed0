"""Vetting a Hub checkpoint before any export (loader.hub), on HF caches laid out by hand, offline."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import tiny_checkpoints
from huggingface_hub import constants
from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

from loader import hub
from loader.estimate import ExportTimes
from loader.jobs import triton_name


def _vet(repo_id: str, max_bytes: int = 10**9, allow_pickle: bool = False) -> hub.Vetted:
    return hub.vet(repo_id, None, None, max_bytes, allow_pickle)


def _build(hub_cache: Path, repo_id: str) -> Path:
    return tiny_checkpoints.build("wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(hub_cache, repo_id))


def test_the_audio_heads_are_transformers_own() -> None:
    assert dict(MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES) == hub.AUDIO_CLASSIFICATION


def test_an_audio_classifier_passes_with_its_weights_size(offline_hub_cache: Path) -> None:
    folder = _build(offline_hub_cache, "org/ok")
    vetted = _vet("org/ok")
    assert vetted.weight_bytes == (folder / "model.safetensors").stat().st_size
    assert vetted.weight_patterns == (hub.SAFE_WEIGHTS,)


def test_an_unreachable_hub_is_a_502_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real connection refused (huggingface_hub raises its HTTP library's own error, no OSError): once a 500."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, never listening: refused
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        with pytest.raises(hub.Refusal) as refusal:
            _vet("org/any")
    assert refusal.value.status == 502 and f"the Hub ({endpoint}) is unreachable" in refusal.value.message


def test_a_checkpoint_over_the_size_limit_is_refused(offline_hub_cache: Path) -> None:
    _build(offline_hub_cache, "org/big")
    with pytest.raises(hub.Refusal) as refusal:
        _vet("org/big", max_bytes=1000)
    assert refusal.value.status == 413 and "over the loader's limit" in refusal.value.message


def test_a_ctc_head_is_not_audio_classification(offline_hub_cache: Path) -> None:
    folder = _build(offline_hub_cache, "org/ctc")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["Wav2Vec2ForCTC"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(hub.Refusal) as refusal:
        _vet("org/ctc")
    assert refusal.value.status == 422 and "architecture Wav2Vec2ForCTC" in refusal.value.message


def test_an_extractor_the_exporter_cannot_handle_is_refused_before_the_export(offline_hub_cache: Path) -> None:
    folder = _build(offline_hub_cache, "org/odd")
    extractor = json.loads((folder / "preprocessor_config.json").read_text())
    extractor["feature_extractor_type"] = "SpeechT5FeatureExtractor"
    (folder / "preprocessor_config.json").write_text(json.dumps(extractor))
    with pytest.raises(hub.Refusal) as refusal:
        _vet("org/odd")
    assert refusal.value.status == 422 and "the exporter cannot handle it" in refusal.value.message


def test_pickle_weights_pass_only_when_allowed(offline_hub_cache: Path) -> None:
    folder = tiny_checkpoints.build(
        "wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(offline_hub_cache, "org/pickled")
    )
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")  # the name is what vetting reads
    with pytest.raises(hub.Refusal) as refusal:
        _vet("org/pickled")
    assert refusal.value.status == 422 and "--allow-pickle" in refusal.value.message
    assert _vet("org/pickled", allow_pickle=True).weight_patterns == hub.PICKLE_WEIGHTS


@pytest.mark.parametrize("model_id", ["../etc", "a/b/c", "/abs", "org/", ""])
def test_what_is_not_a_hub_id_is_refused_without_a_lookup(offline_hub_cache: Path, model_id: str) -> None:
    with pytest.raises(hub.Refusal) as refusal:
        _vet(model_id)
    assert refusal.value.status in (400, 404)


def test_triton_names_keep_the_org_apart() -> None:
    assert triton_name("a/model") != triton_name("b/model")
    assert triton_name("superb/wav2vec2-base-superb-ks") == "superb--wav2vec2-base-superb-ks"


def test_estimates_grow_with_the_checkpoint_and_learn_from_past_exports() -> None:
    times = ExportTimes()
    small, base = times.estimate(10**6), times.estimate(378 * 10**6)
    assert small < base
    times.record(378 * 10**6, 2 * base)  # this machine is twice as slow as the prior says: the first measure wins
    assert times.estimate(378 * 10**6) == pytest.approx(2 * base)
    times.record(378 * 10**6, base)  # later ones are smoothed in
    assert base < times.estimate(378 * 10**6) < 2 * base
