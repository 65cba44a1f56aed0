"""The one room of the gateway that talks to the loader (``python -m loader``): "export this Hub id"."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from gateway.errors import Refused, Unavailable
from triton_steps.contract import ExportState

TIMEOUT_S = 10.0  # the loader vets a checkpoint (a few small Hub calls) before it answers


@dataclass(frozen=True)
class LoaderAnswer:
    state: ExportState
    name: str  # its Triton name
    estimated_time: float = 0.0  # seconds until exported


class LoaderClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _post(self, model_id: str) -> LoaderAnswer:
        request = urllib.request.Request(f"{self.url}/load/{urllib.parse.quote(model_id)}", data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:  # a refusal: its status and reason go to the client as they are
            try:
                message = json.loads(error.read()).get("error") or f"HTTP {error.code}"
            except ValueError:
                message = f"HTTP {error.code}"
            raise (Unavailable(message) if error.code == 503 else Refused(error.code, message)) from None
        except (OSError, ValueError) as error:
            raise Unavailable(f"the model loader is unreachable: {error}") from None
        return LoaderAnswer(ExportState(body["state"]), body["name"], float(body.get("estimated_time", 0.0)))

    async def request(self, model_id: str) -> LoaderAnswer:
        """Ask for ``model_id`` to be exported (or say where it is); ``Refused`` (the loader's status) for a
        refusal, ``Unavailable`` when the loader is busy or away."""
        return await run_in_threadpool(self._post, model_id)
