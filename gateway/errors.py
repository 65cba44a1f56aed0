"""The gateway's errors: one class per kind, each carrying its HTTP status and its WebSocket close code, and
the one place (``install``) where every error becomes the client's answer: JSON ``{"error": ...}``.

Callers raise a kind (``NotFound("...")``) and branch on kinds (``except Unavailable``), never on numbers;
a stream closes with the same error's ``close_code`` after sending the same ``{"error": ...}``.
"""

from __future__ import annotations

import logging
import math
from enum import IntEnum

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.logs import request_id_of

MAX_HEADER_MESSAGE = 500
log = logging.getLogger("gateway.errors")


class CloseCode(IntEnum):
    """WebSocket close codes (RFC 6455) a stream ends with."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the gateway is shutting down
    POLICY = 1008  # bad config, auth, protocol, idle
    TOO_BIG = 1009
    SERVER_ERROR = 1011
    TRY_AGAIN = 1013  # overloaded, or the model is not ready


class GatewayError(Exception):
    """An error the client is told about: ``message``, with the kind's HTTP ``status`` and ``close_code``."""

    status: int = 500
    close_code: CloseCode = CloseCode.SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def estimated_time(self) -> float | None:
        return None


class BadRequest(GatewayError):
    """Bad JSON, base64, audio, parameters, options or stream configuration."""

    status, close_code = 400, CloseCode.POLICY


class UnsupportedMediaType(GatewayError):
    """A body in a form the gateway does not read: a multipart form upload (``curl -F``)."""

    status, close_code = 415, CloseCode.POLICY


class Unauthorized(GatewayError):
    status, close_code = 401, CloseCode.POLICY


class NotFound(GatewayError):
    """An unknown model (or no default one)."""

    status, close_code = 404, CloseCode.POLICY


class RequestTimeout(GatewayError):
    """The body (or a stream's next message) did not arrive in time."""

    status, close_code = 408, CloseCode.POLICY


class TooLarge(GatewayError):
    status, close_code = 413, CloseCode.TOO_BIG


class ClientClosed(GatewayError):
    """The client went away before sending its whole body: counted as nginx's 499, never answered."""

    status, close_code = 499, CloseCode.NORMAL


class BadGateway(GatewayError):
    """Triton failed while running the model."""

    status = 502


class Unavailable(GatewayError):
    """Worth retrying shortly (answered with Retry-After): Triton unreachable, a model not ready or restarting."""

    status, close_code = 503, CloseCode.TRY_AGAIN


class Overloaded(Unavailable):
    """The gateway is at one of its limits (``gateway.admission``)."""


class Loading(Unavailable):
    """The HF Inference API's answer for a model that is not loaded yet, with ``estimated_time`` (seconds)."""

    def __init__(self, model_id: str, estimated_time: float) -> None:
        super().__init__(f"Model {model_id} is currently loading")
        self._estimated_time = round(max(1.0, estimated_time), 1)

    @property
    def estimated_time(self) -> float:
        return self._estimated_time


class Timeout(GatewayError):
    """Inference (or the wait for the heavy lane) took longer than the request's timeout."""

    status = 504


class Refused(GatewayError):
    """The loader refused a Hub id (gated, not audio classification, too big, ...): its status, passed on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_response(
    status: int,
    message: str,
    retry_after_s: int | None = None,
    estimated_time: float | None = None,
    request_id: str = "",
) -> JSONResponse:
    """``{"error": message}`` (plus ``estimated_time`` when given), the message also in ``X-Error-Message`` as
    huggingface_hub reads it."""
    # Headers must be one line of ASCII: a multi-line message (onnxruntime's) would make uvicorn drop the answer.
    one_line = " ".join(message.split())
    headers = {"X-Error-Message": one_line.encode("ascii", "replace").decode()[:MAX_HEADER_MESSAGE]}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    body: dict[str, object] = {"error": message}
    if estimated_time is not None:
        body["estimated_time"] = estimated_time
    if request_id:  # the id to quote when reporting it: the same as in the gateway's log and Triton's
        body["request_id"] = request_id
        headers["X-Request-Id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers)


def answer(error: GatewayError, retry_after_s: int, request_id: str = "") -> JSONResponse:
    """The HTTP answer for ``error``: Retry-After on every ``Unavailable`` (a loading model's estimate)."""
    retry = None
    if isinstance(error, Unavailable):
        retry = math.ceil(error.estimated_time) if error.estimated_time is not None else retry_after_s
    return error_response(error.status, error.message, retry, error.estimated_time, request_id)


def install(app: FastAPI, retry_after_s: int) -> None:
    """Answer every error as JSON: ours, Starlette's (404 route, 405), and validation errors as 400, not 422."""

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, error: GatewayError) -> JSONResponse:
        return answer(error, retry_after_s, request_id_of(request.scope))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        response = error_response(error.status_code, str(error.detail), request_id=request_id_of(request.scope))
        response.headers.update(error.headers or {})  # e.g. the Allow header of a 405
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        message = "; ".join(str(e.get("msg")) for e in error.errors())
        return error_response(400, message, request_id=request_id_of(request.scope))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # A bug, not the client's fault: JSON like every other answer, its traceback logged once, with the id.
        log.error("unexpected error", exc_info=error)
        message = "internal error (the gateway's log has the details under this request id)"
        return error_response(500, message, request_id=request_id_of(request.scope))
