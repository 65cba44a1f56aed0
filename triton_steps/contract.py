"""The ensemble contract, in one place: the names every side of the project agrees on.

An exported model NAME is an ensemble ``NAME`` = ``NAME_preprocess`` -> ``NAME_onnx`` -> ``NAME_postprocess``
(exported with ``--single-step``: one Python model ``NAME`` doing all three, with the same inputs and outputs).
Clients send ``AUDIO`` (the file's bytes) and optionally ``TOP_K`` and ``FUNCTION_TO_APPLY``; they get
``LABELS`` and ``SCORES``. The exporter writes these names, the steps read them, the gateway, ``make perf``,
the model store and the tests call them. Torch-free and Triton-free, so every side can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MAX_RATE = 384_000  # Hz: the highest rate of any common recording format; uploads and streams above are refused
# int16 <-> float samples: x / 32768, the convention of libsndfile and FFmpeg (which decode the audio in Triton)
# and of the 16-bit WAV a live stream's windows are sent as
PCM16_SCALE = 32768


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a model, without the batch axis (-1 for a variable axis)."""

    name: str
    data_type: str  # a Triton type name, e.g. "TYPE_FP32"
    dims: tuple[int, ...]


# The ensemble's inputs and outputs (what clients see).
AUDIO = TensorSpec("AUDIO", "TYPE_STRING", (1,))
TOP_K = TensorSpec("TOP_K", "TYPE_INT32", (1,))
FUNCTION_TO_APPLY = TensorSpec("FUNCTION_TO_APPLY", "TYPE_STRING", (1,))
LABELS = TensorSpec("LABELS", "TYPE_STRING", (-1,))
SCORES = TensorSpec("SCORES", "TYPE_FP32", (-1,))
OPTIONAL_INPUTS = (TOP_K, FUNCTION_TO_APPLY)

# Between the steps: the network's output (its inputs are named as in the model's feature extractor).
LOGITS = "logits"


def logits_spec(num_labels: int, windows: bool = False) -> TensorSpec:
    """The network's logits; with ``windows``, every window's logits of a chunked clip."""
    return TensorSpec(LOGITS, "TYPE_FP32", (-1, num_labels) if windows else (num_labels,))


@dataclass(frozen=True)
class StepNames:
    """The four models that make up one exported model NAME."""

    ensemble: str

    @property
    def preprocess(self) -> str:
        return f"{self.ensemble}_preprocess"

    @property
    def network(self) -> str:
        return f"{self.ensemble}_onnx"

    @property
    def postprocess(self) -> str:
        return f"{self.ensemble}_postprocess"

    def all(self) -> list[str]:
        """In load order: the steps before the ensemble that uses them."""
        return [self.preprocess, self.network, self.postprocess, self.ensemble]


# A model directory of Triton's repository: its config, the version folder Triton serves, and a Python
# model's (or a Python-based backend's) entry point in it.
CONFIG_FILE = "config.pbtxt"
VERSION_DIR = "1"
PYTHON_MODEL_FILE = "model.py"

# Files in the model directories.
METADATA_FILE = "metadata.json"  # in the ensemble's directory
EXTRACTOR_FILE = "preprocessor_config.json"  # in the preprocess step's directory
LABELS_FILE = "labels.json"  # in the postprocess step's directory
NETWORK_FILE = "model.onnx"  # in the network step's version directory

# Config parameters (``parameters { key: ... string_value: ... }``) each step reads.
METADATA_PARAMETER = "metadata"  # ensemble: ModelMetadata as JSON, read by the gateway through Triton
MIN_SAMPLES = "min_samples"  # preprocess: shortest accepted clip
MAX_SECONDS = "max_seconds"  # preprocess: longest accepted clip ("" for no limit)
LONG_AUDIO = "long_audio"  # preprocess: "chunk" for sliding windows
WINDOW_SAMPLES = "window_samples"  # preprocess, chunk mode
HOP_SAMPLES = "hop_samples"  # preprocess, chunk mode
NETWORK = "network"  # preprocess, chunk mode: the network step it calls
NETWORK_INPUTS = "network_inputs"  # preprocess, chunk mode: JSON {input name: Triton type}
FUNCTION_TO_APPLY_DEFAULT = "function_to_apply"  # postprocess: used when a request names none
INTRA_OP_THREADS = "intra_op_thread_count"  # network: as Triton's onnxruntime backend names it
ENGINE = "engine"  # network, local step only: onnxruntime or openvino (triton_steps.engines)
PRECISION = "precision"  # network, local step only: fp32, or bf16 on OpenVINO (triton_steps.engines)
INTER_OP_THREADS = "inter_op_thread_count"  # network: as Triton's onnxruntime backend names it
BATCHED_EXAMPLE_LIMIT = "batched_example_limit"  # network, local step, single step: larger examples run alone

# Where the stack's services meet (every launcher and default refers to these; the Makefile, compose and the
# Kubernetes manifests repeat them as data, and tests/test_deploy checks they agree).
TRITON_HTTP_PORT = 8000  # tritonserver's own defaults
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
DEFAULT_GATEWAY_PORT = 8080
DEFAULT_LOADER_PORT = 8090  # the on-demand loader (python -m loader), asked by the gateway's GATEWAY_LOADER_URL


class TextEnum(str, Enum):
    """A str enum that prints as its value (in logs, f-strings and metric labels), on Python 3.10 as on 3.12."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class ExportState(TextEnum):
    """Where the loader stands with a Hub id (its answers' ``state``; the gateway's ``GET /models`` shows
    ``loading`` for the first two)."""

    QUEUED = "queued"
    EXPORTING = "exporting"
    EXPORTED = "exported"  # in the repository: the gateway loads it
    FAILED = "failed"
