"""A dead Python stub: recognised in Triton's errors (the gateway's recovery), and the config that makes
Triton really reload its model (``TritonControl.reload``, used by the gateway and ``model_store.heal``).

tritonserver 2.51 never restarts a stub that died: the model stays "ready" and each request it gets fails
with "Stub process '<model>_<group>_<index>' is not healthy".
"""

from __future__ import annotations

import re
import time

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


def with_reload_marker(config: dict) -> dict:
    """A model's config (Triton's JSON form) that Triton will really reload: loading a model with its
    unchanged config is a no-op in 2.51, which would keep the dead stub. The marker parameter is ignored."""
    marked = dict(config)
    marked["parameters"] = {**config.get("parameters", {}), "reloaded_at": {"string_value": f"{time.time():.3f}"}}
    return marked
