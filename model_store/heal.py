"""Find Python stubs that died (an OOM kill, a crash) and reload their models.

tritonserver 2.51 never restarts a dead stub: the model stays "ready" and fails every request with "Stub
process '<model>_<group>_<index>' is not healthy". Each round, every served ensemble classifies a short
silent clip; a step named in such an error is reloaded (fresh instances, swapped in when ready). This runs
beside each Triton (in ``model_store.sync``), so it heals the right replica, traffic or not; the gateway also
reloads on the first failing request, which is faster under traffic.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import soundfile

from triton_steps.contract import METADATA_PARAMETER
from triton_steps.metadata import ModelMetadata
from triton_steps.stub_health import dead_instance, model_of

if TYPE_CHECKING:
    from model_store.sync import TritonRepository

PROBE_SECONDS = 1.0


def probe_clip(metadata: ModelMetadata) -> bytes:
    """A silent WAV the model accepts: at least its shortest input, at its sampling rate."""
    samples = max(metadata.min_samples, int(PROBE_SECONDS * metadata.sampling_rate))
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(samples, np.float32), metadata.sampling_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class StubHealer:
    def __init__(self, triton: TritonRepository, log: Callable[[str], None] = print) -> None:
        self.triton = triton
        self.log = log
        self._clips: dict[str, bytes] = {}  # metadata (JSON) -> its probe clip: a re-export may change the rate

    def check(self) -> list[str]:
        """Probe every served ensemble once; returns the models reloaded."""
        ready = {e["name"] for e in self.triton.index() if e.get("state") == "READY"}
        reloaded = []
        for name in sorted(ready):
            parameters = self.triton.config(name).get("parameters", {})
            text = parameters.get(METADATA_PARAMETER, {}).get("string_value")
            if not text:
                continue  # not an exported ensemble
            if text not in self._clips:
                self._clips[text] = probe_clip(ModelMetadata.from_json(text))
            instance = dead_instance(self.triton.infer_audio(name, self._clips[text]) or "")
            model = model_of(instance, ready) if instance else None
            if model is not None:
                self.triton.reload(model)
                self.log(f"reloaded {model}: its stub {instance} had died")
                reloaded.append(model)
        return reloaded
