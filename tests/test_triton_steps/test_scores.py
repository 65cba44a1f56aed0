"""triton_steps.scores: function_to_apply and top_k as transformers' AudioClassificationPipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from triton_steps.scores import ParameterError, apply_function, default_function, ranked

LOGITS = np.array([0.5, -1.25, 3.0, 2.0, -0.1], dtype=np.float32)
LABELS = ["a", "b", "c", "d", "e"]


def rank(logits: np.ndarray, function: str, top_k: int | None) -> tuple[list[str], list[float]]:
    order, scores = ranked(logits, len(LABELS), function, top_k)
    return [LABELS[i] for i in order], scores.tolist()


@pytest.mark.parametrize(
    ("function", "reference"),
    [("softmax", lambda t: t.softmax(-1)), ("sigmoid", lambda t: t.sigmoid()), ("none", lambda t: t)],
)
def test_functions_equal_torch(function: str, reference) -> None:
    expected = reference(torch.from_numpy(LOGITS)).numpy()
    np.testing.assert_allclose(apply_function(LOGITS, function), expected, atol=1e-7)


def test_softmax_is_stable_for_large_logits() -> None:
    scores = apply_function(np.array([1000.0, 999.0], np.float32), "softmax")
    assert np.isfinite(scores).all() and scores[0] > scores[1]


def test_rank_sorts_and_cuts() -> None:
    labels, scores = rank(LOGITS, "none", top_k=2)
    assert labels == ["c", "d"] and scores == [3.0, 2.0]
    labels, _ = rank(LOGITS, "softmax", top_k=None)
    assert labels == ["c", "d", "a", "e", "b"]


def test_top_k_above_label_count_is_clipped() -> None:
    labels, scores = rank(LOGITS, "softmax", top_k=50)
    assert len(labels) == len(scores) == 5


@pytest.mark.parametrize(("function", "top_k"), [("relu", None), ("softmax", 0), ("none", -3)])
def test_invalid_parameters_say_what_is_allowed(function: str, top_k: int | None) -> None:
    with pytest.raises(ParameterError, match="must be"):
        rank(LOGITS, function, top_k)


@pytest.mark.parametrize(
    ("problem_type", "function"),
    [
        (None, "softmax"),
        ("single_label_classification", "softmax"),
        ("multi_label_classification", "sigmoid"),
        ("regression", "none"),
    ],
)
def test_default_function_per_problem_type(problem_type: str | None, function: str) -> None:
    assert default_function(problem_type) == function
