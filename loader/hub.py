"""Fetch a Hub checkpoint with huggingface_hub and decide, before any export, whether it may be exported.

Everything here is cheap next to an export: the Hub's listing (or, offline, the HF cache), ``config.json`` and
``preprocessor_config.json``. The weights are downloaded only once the checkpoint has passed. Standard
huggingface_hub settings apply: ``HF_TOKEN``, ``HF_HOME``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub import errors as hub_errors

from triton_steps.features import UnsupportedExtractorError, extractor_from_config

HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
SAFE_WEIGHTS = "*.safetensors"
# Formats whose loading unpickles (runs code from the file): refused unless the loader allows pickle.
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
# transformers' audio-classification heads (MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES), kept here so that
# vetting needs no transformers import; tests check the two agree.
AUDIO_CLASSIFICATION = {
    "audio-spectrogram-transformer": "ASTForAudioClassification",
    "data2vec-audio": "Data2VecAudioForSequenceClassification",
    "hubert": "HubertForSequenceClassification",
    "sew": "SEWForSequenceClassification",
    "sew-d": "SEWDForSequenceClassification",
    "unispeech": "UniSpeechForSequenceClassification",
    "unispeech-sat": "UniSpeechSatForSequenceClassification",
    "wav2vec2": "Wav2Vec2ForSequenceClassification",
    "wav2vec2-bert": "Wav2Vec2BertForSequenceClassification",
    "wav2vec2-conformer": "Wav2Vec2ConformerForSequenceClassification",
    "wavlm": "WavLMForSequenceClassification",
    "whisper": "WhisperForAudioClassification",
}


class Refusal(Exception):
    """The checkpoint will not be exported: the HTTP status and the reason the client gets."""

    def __init__(self, status: int, message: str, remember: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.remember = remember  # False: a passing fault (the Hub unreachable), worth trying again soon


@dataclass(frozen=True)
class Vetted:
    """A checkpoint that may be exported: its Hub id, revision asked for, and the weights' size."""

    model_id: str
    revision: str | None
    weight_bytes: int
    weight_patterns: tuple[str, ...]  # the weight files to download

    def download(self, token: str | None) -> Path:
        """The snapshot folder, with the configs and the allowed weights."""
        try:
            folder = snapshot_download(
                self.model_id,
                revision=self.revision,
                token=token,
                allow_patterns=["*.json", *self.weight_patterns],
            )
        except hub_errors.GatedRepoError:
            raise Refusal(403, f"{self.model_id} is gated: accept its terms on the Hub and set HF_TOKEN") from None
        except (hub_errors.HfHubHTTPError, OSError) as error:
            raise Refusal(502, f"could not download {self.model_id}: {error}", remember=False) from None
        except Exception as error:  # noqa: BLE001 - the Hub client's transport errors, as in _listing
            raise Refusal(502, f"the Hub ({constants.ENDPOINT}) is unreachable: {error}", remember=False) from None
        return Path(folder)


def _matching(files: dict[str, int], patterns: tuple[str, ...]) -> dict[str, int]:
    return {name: size for name, size in files.items() if any(fnmatch.fnmatch(name, p) for p in patterns)}


def _listing(model_id: str, revision: str | None, token: str | None) -> dict[str, int]:
    """File name -> size, from the Hub (gated or not, and its pipeline tag, checked too) or, offline, the cache."""
    try:
        if constants.HF_HUB_OFFLINE:
            folder = Path(snapshot_download(model_id, revision=revision, local_files_only=True))
            return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
        info = HfApi().model_info(model_id, revision=revision, token=token, files_metadata=True)
    except hub_errors.GatedRepoError:
        raise Refusal(403, f"{model_id} is gated: accept its terms on the Hub and set HF_TOKEN") from None
    except (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError):
        raise Refusal(404, f"model {model_id} does not exist on the Hub (or is private: set HF_TOKEN)") from None
    except hub_errors.LocalEntryNotFoundError:
        raise Refusal(404, f"model {model_id} is not in the HF cache, and the Hub is off (HF_HUB_OFFLINE)") from None
    except (hub_errors.HfHubHTTPError, OSError) as error:
        raise Refusal(502, f"the Hub could not be asked about {model_id}: {error}", remember=False) from None
    except Exception as error:  # noqa: BLE001 - the Hub client's transport errors (its HTTP library varies by version)
        raise Refusal(502, f"the Hub ({constants.ENDPOINT}) is unreachable: {error}", remember=False) from None
    if info.gated and not token:
        raise Refusal(403, f"{model_id} is gated: accept its terms on the Hub and set HF_TOKEN")
    if info.pipeline_tag and info.pipeline_tag != "audio-classification":
        raise Refusal(422, f"{model_id} is not an audio-classification model (its pipeline is {info.pipeline_tag})")
    return {s.rfilename: s.size or 0 for s in info.siblings or []}


def _read_json(model_id: str, name: str, revision: str | None, token: str | None) -> dict[str, Any]:
    try:
        path = hf_hub_download(model_id, name, revision=revision, token=token)
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (hub_errors.HfHubHTTPError, OSError, ValueError) as error:
        raise Refusal(422, f"{model_id}: could not read its {name}: {error}") from None


def _remote_code(model_id: str) -> Refusal:
    return Refusal(422, f"{model_id} needs trust_remote_code (its own Python code), which is never run here")


def _check_config(model_id: str, config: dict[str, Any]) -> None:
    if "auto_map" in config:
        raise _remote_code(model_id)
    model_type = config.get("model_type", "")
    architectures = config.get("architectures") or []
    head = AUDIO_CLASSIFICATION.get(model_type)
    if head is None or (architectures and head not in architectures):
        shown = ", ".join(architectures) or model_type or "unknown"
        raise Refusal(422, f"{model_id} is not an audio-classification checkpoint (architecture {shown})")


def _check_extractor(model_id: str, extractor: dict[str, Any]) -> None:
    if "auto_map" in extractor:
        raise _remote_code(model_id)
    try:
        extractor_from_config(extractor)
    except UnsupportedExtractorError as error:
        raise Refusal(422, f"{model_id}: the exporter cannot handle it: {error}") from None


def vet(model_id: str, revision: str | None, token: str | None, max_bytes: int, allow_pickle: bool) -> Vetted:
    """The checkpoint ``model_id`` if it may be exported; else ``Refusal`` saying why."""
    if not HUB_ID.match(model_id) or ".." in model_id:
        raise Refusal(400, f"{model_id!r} is not a Hub model id (org/name)")
    files = _listing(model_id, revision, token)
    # config.json before the extractor's file: a text model (which has none) is refused naming its architecture
    for name, check in (("config.json", _check_config), ("preprocessor_config.json", _check_extractor)):
        if name not in files:
            raise Refusal(422, f"{model_id} is not an audio-classification checkpoint: it has no {name}")
        check(model_id, _read_json(model_id, name, revision, token))
    patterns: tuple[str, ...] = (SAFE_WEIGHTS,)
    weights = _matching(files, patterns)
    if not weights:
        pickled = _matching(files, PICKLE_WEIGHTS)
        if not pickled:
            raise Refusal(422, f"{model_id} has no weights (no .safetensors file)")
        if not allow_pickle:
            raise Refusal(
                422,
                f"{model_id} has weights only as pickle ({', '.join(sorted(pickled))}): loading them runs code "
                "from the file, refused unless the loader runs with --allow-pickle",
            )
        patterns, weights = PICKLE_WEIGHTS, pickled
    size = sum(weights.values())
    if size > max_bytes:
        raise Refusal(413, f"{model_id} weighs {size / 1e9:.2f} GB, over the loader's limit of {max_bytes / 1e9:g} GB")
    return Vetted(model_id, revision, size, patterns)
