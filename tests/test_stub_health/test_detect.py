"""Recognising a dead stub in Triton's words, the model an instance belongs to, and the reload marker."""

from __future__ import annotations

from stub_health.detect import dead_instance, model_of
from triton_control.client import with_reload_marker


def test_a_dead_stub_is_named_and_other_errors_are_not() -> None:
    message = "Failed to process the request(s) for model 'm_onnx_0_1': Stub process 'm_onnx_0_1' is not healthy."
    assert dead_instance(message) == "m_onnx_0_1"
    assert dead_instance("could not decode the audio") is None


def test_an_instance_belongs_to_the_longest_known_model_it_extends() -> None:
    known = {"m", "m_onnx", "m_2_preprocess"}
    assert model_of("m_onnx_0_1", known) == "m_onnx"
    assert model_of("m_2_preprocess_0_0", known) == "m_2_preprocess"  # digits inside a name are kept
    assert model_of("other_0_0", known) is None


def test_the_marker_changes_the_config_and_keeps_its_parameters() -> None:
    config = {"name": "m", "parameters": {"metadata": {"string_value": "{}"}}}
    marked = with_reload_marker(config)
    assert marked["parameters"]["metadata"] == {"string_value": "{}"} and "reloaded_at" in marked["parameters"]
    assert config["parameters"] == {"metadata": {"string_value": "{}"}}  # the original is untouched
