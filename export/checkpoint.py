"""Load an audio-classification checkpoint (Hub id or local folder) the way transformers' pipeline does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants
from huggingface_hub.utils import get_session
from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

from triton_steps.scores import default_function

HUB_PROBE_TIMEOUT_S = 3.0  # a reachable Hub answers a HEAD well within this


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


def hub_unreachable() -> str | None:
    """Why the Hub cannot be asked now (offline mode, or no answer from ``HF_ENDPOINT`` within
    ``HUB_PROBE_TIMEOUT_S``, through huggingface_hub's own client and proxies), or None when it can: probed
    once, so that an unreachable Hub costs seconds, not huggingface_hub's minute of retries per file."""
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - any transport error (the client's classes vary by version)
        return f"{constants.ENDPOINT} did not answer ({error})"
    return None


def load(source: str, revision: str | None = None, token: str | None = None) -> Checkpoint:
    """Load model, feature extractor and labels from a Hub id or a ``save_pretrained`` folder; a Hub id from
    the HF cache alone when the Hub cannot be asked."""
    is_folder = Path(source).is_dir()
    if not is_folder and (source.startswith(("/", ".", "~")) or source.count("/") > 1):
        raise ExportError(f"{source!r} is not a folder, and not a Hub id (org/name) either")
    kwargs: dict[str, Any] = {"revision": revision, "token": token}
    unreachable = None if is_folder else hub_unreachable()
    if unreachable:
        kwargs["local_files_only"] = True
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        extractor = AutoFeatureExtractor.from_pretrained(source, **kwargs)
        # Eager attention exports to plain ONNX ops on every architecture (dynamo and SDPA need not).
        model = AutoModelForAudioClassification.from_pretrained(source, attn_implementation="eager", **kwargs)
    except (OSError, ValueError, KeyError) as error:
        if unreachable:
            raise ExportError(
                f"{source!r} is not in the HF cache ({constants.HF_HUB_CACHE}), and the Hub cannot be asked: "
                f"{unreachable}. Export from a folder (save_pretrained), or reach the Hub (HF_ENDPOINT: a mirror)"
            ) from None
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
