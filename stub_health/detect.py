"""A dead Python stub, recognised in Triton's errors (``stub_health.recovery``, the gateway's side).

tritonserver 2.51 never restarts a stub that died: the model stays "ready" and each request it gets fails
with "Stub process '<model>_<group>_<index>' is not healthy".
"""

from __future__ import annotations

import re

_DEAD_STUB = re.compile(r"Stub process '(?P<instance>[^']+)' is not healthy")


def dead_instance(message: str) -> str | None:
    """The instance named by a dead-stub error, else None."""
    match = _DEAD_STUB.search(message)
    return match["instance"] if match else None


def model_of(instance: str, known: set[str]) -> str | None:
    """The model (one of ``known``) an instance name ``<model>_<group>_<index>`` belongs to."""
    model = instance
    while model not in known and re.search(r"_\d+$", model):
        model = re.sub(r"_\d+$", "", model)
    return model if model in known else None
