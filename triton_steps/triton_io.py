"""Small helpers shared by the Python-backend models (they only run inside Triton's Python stub)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl
import triton_python_backend_utils as pb_utils

from triton_steps import contract


def one_blas_thread() -> None:
    """Numpy's BLAS on one thread in this stub, for as long as it runs. Its default, a thread per core that
    spins after each call, takes the cores the network step is computing on: measured with Whisper-base 10 s
    at one request at a time, the preprocess stubs used 67 ms of CPU per request instead of 27, and the network
    step's forward pass took 390-510 ms instead of 380-400. A step's parallelism is its instances."""
    threadpoolctl.threadpool_limits(limits=1, user_api="blas")


def parameters(args: dict[str, str]) -> dict[str, str]:
    """The string parameters of the model's config.pbtxt."""
    config = json.loads(args["model_config"])
    return {key: value["string_value"] for key, value in config.get("parameters", {}).items()}


def model_config(args: dict[str, str]) -> dict[str, Any]:
    return json.loads(args["model_config"])


def max_batch_size(args: dict[str, str]) -> int:
    """The model's ``max_batch_size`` (at least 1): how many windows a step that runs the network sends at once."""
    return max(1, int(model_config(args).get("max_batch_size", 1)))


def network_inputs(parameters: dict[str, str]) -> dict[str, np.dtype]:
    """The network's inputs and their types, from ``contract.NETWORK_INPUTS`` (a step that feeds it itself)."""
    return {name: numpy_dtype(t) for name, t in json.loads(parameters[contract.NETWORK_INPUTS]).items()}


def model_dir(args: dict[str, str]) -> Path:
    return Path(args["model_repository"])


class ManyClipsError(ValueError):
    """A request that holds more than one clip along Triton's batch axis (a client's batch, e.g.
    ``perf_analyzer -b 4``): its one response answers one clip, so it is refused rather than the rest dropped."""


def _single(tensor: Any, name: str) -> Any:
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise ManyClipsError(
            f"a request classifies one clip, and its {name} holds {values.size}: send each clip as its own "
            "request (Triton's dynamic batcher groups concurrent requests)"
        )
    return values[0]


def scalar(request: Any, name: str) -> Any:
    """The single element of a required [1]-shaped input; ``ManyClipsError`` when the request holds more."""
    return _single(pb_utils.get_input_tensor_by_name(request, name), name)


def optional_scalar(request: Any, name: str) -> Any | None:
    """``scalar`` of an optional input, or None when the request omits it."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else _single(tensor, name)


def error_response(message: str, invalid_argument: bool = True) -> Any:
    """A per-request error: INVALID_ARG reaches HTTP clients as 400, anything else as 500."""
    code = pb_utils.TritonError.INVALID_ARG if invalid_argument else pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))


def numpy_dtype(triton_type: str) -> np.dtype:
    return np.dtype(pb_utils.triton_string_to_numpy(triton_type))


@dataclass(frozen=True)
class Failed:
    """A request that failed at some stage of its step: the error response it gets."""

    response: Any


def try_each(
    items: Sequence[Any], handle: Callable[[Any], Any], client_errors: tuple[type[Exception], ...], step: str
) -> list[Any]:
    """``handle(item)`` for each item, or ``Failed`` with its error response: a client error (``client_errors``,
    or a request of several clips) is INVALID_ARG, an unexpected one INTERNAL (logged); neither stops the rest
    of the batch."""
    results: list[Any] = []
    for item in items:
        try:
            results.append(handle(item))
        except (ManyClipsError, *client_errors) as error:
            results.append(Failed(error_response(str(error))))
        except Exception as error:  # noqa: BLE001 - report, keep serving the others
            traceback.print_exc()
            results.append(Failed(error_response(f"{step} failed: {error}", invalid_argument=False)))
    return results


def respond_each(
    requests: list[Any], handle: Callable[[Any], Any], client_errors: tuple[type[Exception], ...], step: str
) -> list[Any]:
    """One response per request, ``handle``'s or its error's (``try_each``)."""
    return [r.response if isinstance(r, Failed) else r for r in try_each(requests, handle, client_errors, step)]


def run_failed(error: Exception) -> Any:
    """The response of a request whose network run raised ``error`` (logged): INTERNAL."""
    traceback.print_exception(error)
    return error_response(f"inference failed: {error}", invalid_argument=False)
