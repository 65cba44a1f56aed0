"""Logits -> sorted (label, score) pairs, as transformers' AudioClassificationPipeline.postprocess."""

from __future__ import annotations

import numpy as np

from triton_steps.long_audio import aggregate

FUNCTIONS = ("softmax", "sigmoid", "none")


class ParameterError(ValueError):
    """A request parameter (top_k, function_to_apply) is invalid; the message says what is allowed."""


def default_function(problem_type: str | None) -> str:
    """transformers' default ``function_to_apply`` for a model config's ``problem_type``."""
    if problem_type == "regression":
        return "none"
    if problem_type == "multi_label_classification":
        return "sigmoid"
    return "softmax"


def check_function(name: str) -> str:
    """Return ``name`` if it is a known function_to_apply, else raise ``ParameterError``."""
    if name not in FUNCTIONS:
        raise ParameterError(f"function_to_apply must be one of {', '.join(FUNCTIONS)}; got {name!r}")
    return name


def check_top_k(top_k: int) -> int:
    """Return ``top_k`` if it is at least 1, else raise ``ParameterError``."""
    if top_k < 1:
        raise ParameterError(f"top_k must be an integer >= 1; got {top_k}")
    return top_k


def apply_function(logits: np.ndarray, name: str) -> np.ndarray:
    """Softmax, sigmoid or identity over the last axis, computed in float32 like torch."""
    x = np.asarray(logits, dtype=np.float32)
    if check_function(name) == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "sigmoid":
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    return x


def ranked(logits: np.ndarray, labels: int, function_to_apply: str, top_k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the ``top_k`` best of ``labels`` labels (all when None; clipped to the label count) and their
    scores, best first.

    ``logits`` is one clip's ``(labels,)``, or ``(windows, labels)`` of a chunked long clip (aggregated).
    """
    scores = apply_function(logits, function_to_apply)
    if scores.ndim == 2:
        scores = aggregate(scores, function_to_apply)
    k = labels if top_k is None else min(check_top_k(top_k), labels)
    order = np.argsort(-scores, kind="stable")[:k]
    return order, scores[order].astype(np.float32)
