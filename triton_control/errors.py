"""Triton's errors, in one convention: ``TritonError`` with gRPC's status name and Triton's message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from tritonclient.utils import InferenceServerException

# Triton's answer to a request that arrives while it shuts down (gRPC UNAVAILABLE too, in 2.51)
_SHUTTING_DOWN = re.compile(r"server is (shutting down|stopping|not ready)", re.I)
# Triton prefixes a step's error with "in ensemble 'NAME', ": what the step said is the message.
_ENSEMBLE_PREFIX = re.compile(r"^in ensemble '[^']*', ")


class TritonError(Exception):
    """What Triton answered (or that it could not be reached): ``status`` is gRPC's status name
    (``UNAVAILABLE``, ``INVALID_ARGUMENT``, ``DEADLINE_EXCEEDED``, ...; ``""`` when none), ``message`` Triton's
    words without the ensemble prefix."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message

    @property
    def replica_gone(self) -> bool:
        """The server went away or could not be reached (worth trying again: another replica may answer)."""
        return self.status == "UNAVAILABLE" or bool(_SHUTTING_DOWN.search(self.message))

    @property
    def timed_out(self) -> bool:
        return self.status == "DEADLINE_EXCEEDED" or "Deadline Exceeded" in self.message

    @property
    def invalid_input(self) -> bool:
        return self.status == "INVALID_ARGUMENT"

    @property
    def not_available(self) -> bool:
        """The model is unknown or not ready (or Triton is unreachable)."""
        unknown_or_not_ready = "not ready" in self.message or "unknown model" in self.message
        return self.status in ("UNAVAILABLE", "NOT_FOUND") or unknown_or_not_ready


def _status_name(error: InferenceServerException) -> str:
    # tritonclient gives gRPC's "StatusCode.UNAVAILABLE" (or None for its own errors)
    return str(error.status() or "").removeprefix("StatusCode.")


@contextmanager
def translated() -> Iterator[None]:
    """Raise tritonclient's exceptions as ``TritonError``."""
    try:
        yield
    except InferenceServerException as error:
        message = _ENSEMBLE_PREFIX.sub("", error.message() or str(error))
        raise TritonError(_status_name(error), message) from None
