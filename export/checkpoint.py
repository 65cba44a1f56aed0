"""Load an audio-classification checkpoint (Hub id or local folder) the way transformers' pipeline does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

from triton_steps.scores import default_function


class ExportError(RuntimeError):
    """The checkpoint cannot be exported exactly; the message says why."""


@dataclass
class Checkpoint:
    source: str  # as given: a Hub id or a folder
    model_id: str | None  # the Hub id; None for a folder (the exported model's name serves as its id)
    model: torch.nn.Module
    extractor: Any  # a transformers FeatureExtractor
    labels: list[str]
    function_to_apply: str
    architecture: str
    model_type: str

    @property
    def extractor_config(self) -> dict[str, Any]:
        config = self.extractor.to_dict()
        config.pop("mel_filters", None)  # derived, large; recomputed from the parameters
        config.pop("window", None)
        return config


def default_name(source: str) -> str:
    """A Triton model name for a Hub id or folder: its last part, with only [A-Za-z0-9_.-] kept."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source.rstrip("/")).name).strip("-.")
    if not name:
        raise ExportError(f"cannot derive a model name from {source!r}; pass --name")
    return name


def load(source: str, revision: str | None = None, token: str | None = None) -> Checkpoint:
    """Load model, feature extractor and labels from a Hub id or a ``save_pretrained`` folder."""
    is_folder = Path(source).is_dir()
    if not is_folder and (source.startswith(("/", ".", "~")) or source.count("/") > 1):
        raise ExportError(f"{source!r} is not a folder, and not a Hub id (org/name) either")
    kwargs: dict[str, Any] = {"revision": revision, "token": token}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        extractor = AutoFeatureExtractor.from_pretrained(source, **kwargs)
        # Eager attention exports to plain ONNX ops on every architecture (dynamo and SDPA need not).
        model = AutoModelForAudioClassification.from_pretrained(source, attn_implementation="eager", **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise ExportError(f"could not load an audio-classification checkpoint from {source!r}: {error}") from error
    model.eval()
    labels = [str(config.id2label[i]) for i in range(config.num_labels)]
    return Checkpoint(
        source=source,
        model_id=None if is_folder else source,
        model=model,
        extractor=extractor,
        labels=labels,
        function_to_apply=default_function(getattr(config, "problem_type", None)),
        architecture=type(model).__name__,
        model_type=config.model_type,
    )
